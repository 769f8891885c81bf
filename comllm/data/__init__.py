"""Datasets: records (JSONL and the official COMLLM format) and their generation from simulator trajectories."""

from comllm.data.generate import BEHAVIOURS, SPLITS, GenerationConfig, generate_records, parse_servers
from comllm.data.records import (
    DataError,
    Record,
    RecordReader,
    read_records,
    record_from_reference,
    record_to_reference,
    state_from_dict,
    state_to_dict,
    write_records,
)

__all__ = [
    "BEHAVIOURS",
    "SPLITS",
    "DataError",
    "GenerationConfig",
    "Record",
    "RecordReader",
    "generate_records",
    "parse_servers",
    "read_records",
    "record_from_reference",
    "record_to_reference",
    "state_from_dict",
    "state_to_dict",
    "write_records",
]
