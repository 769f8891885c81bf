"""Reports: tables (Markdown, CSV, JSON) and plots (PNG) from evaluation results."""
