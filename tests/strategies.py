"""Hypothesis strategies shared by the tests."""

from hypothesis import strategies as st

from comllm.scenario import SERVER_TYPES, make_scenario

TYPES = list(SERVER_TYPES)


@st.composite
def scenarios(draw):
    n_servers = draw(st.integers(1, 5))
    servers = [
        {"type": draw(st.sampled_from(TYPES)), "ghz": draw(st.floats(1.0, 60.0))} for _ in range(n_servers)
    ]
    size_min = draw(st.floats(0.1, 4.0))
    data = {
        "n_devices": draw(st.integers(1, 8)),
        "servers": servers,
        "arrival_prob": draw(st.floats(0.0, 1.0)),
        "size_min": size_min,
        "size_max": size_min + draw(st.floats(0.0, 4.0)),
        "deadline": draw(st.integers(1, 12)),
        "device_ghz": draw(st.floats(0.5, 5.0)),
        "uplink_mbps": draw(st.floats(2.0, 40.0)),
        "history_len": draw(st.integers(1, 12)),
        "channel": {"model": draw(st.sampled_from(["static", "gauss-markov", "rayleigh"]))},
    }
    if draw(st.booleans()):
        data["bursty"] = {"burst_prob": draw(st.floats(0, 1)), "p_enter": 0.1, "p_leave": 0.3}
    return make_scenario(data)
