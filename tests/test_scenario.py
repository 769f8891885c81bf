import pytest

from comllm.scenario import PRESETS, ScenarioError, load_scenario


def test_presets_load_and_share_devices_and_load():
    six, eleven = load_scenario("paper-6"), load_scenario("paper-11")
    assert (six.n_servers, eleven.n_servers) == (6, 11)
    assert six.n_devices == eleven.n_devices and six.arrival_prob == eleven.arrival_prob
    assert {s.type for s in six.servers} == {"high-performance", "standard", "energy-saving"}
    for name in PRESETS:
        assert load_scenario(name).name == name


def test_derived_rates_follow_design_defaults():
    sc = load_scenario("paper-6")
    assert sc.local_rate == pytest.approx(2.5 * 0.1 / 0.297)  # ≈ 0.84 Mbit/slot
    assert sc.uplink_rate == pytest.approx(1.4)
    assert sc.server_rates()[0] == pytest.approx(41.8 * 0.1 / 0.297)
    f = sc.figures()
    assert f["offered_mbit_per_slot"] == pytest.approx(30 * 0.3 * 3.5)
    assert 0 < f["load_factor"] < 1


def test_overrides_from_strings_and_dicts():
    sc = load_scenario("paper-6", ["arrival_prob=0.5", "channel.model=rayleigh", "servers=[standard, energy-saving]"])
    assert sc.arrival_prob == 0.5 and sc.channel.model == "rayleigh"
    assert [s.ghz for s in sc.servers] == [30.0, 22.0]
    assert load_scenario("paper-6", {"bursty.burst_prob": 0.9}).bursty.burst_prob == 0.9


def test_yaml_file_with_base(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: paper-11\narrival_prob: 0.4\nn_devices: 12\n")
    sc = load_scenario(str(path))
    assert (sc.n_servers, sc.arrival_prob, sc.n_devices, sc.name) == (11, 0.4, 12, "paper-11")


@pytest.mark.parametrize(
    "override, message",
    [
        ("arrival_prob=1.5", "'arrival_prob' = 1.5"),
        ("arrival_prob=-0.1", "'arrival_prob' = -0.1"),
        ("servers=[]", "at least one server"),
        ("servers=[{type: standard, ghz: -3}]", "'servers.0.ghz' = -3"),
        ("servers=[quantum]", "unknown server type 'quantum'"),
        ("colour=blue", "unknown scenario key 'colour'"),
        ("channel.speed=3", "unknown scenario key 'channel.speed'"),
        ("n_devices=many", "'n_devices' = 'many'"),
        ("size_min=9", "'size_min' = 9.0: is above size_max=5.0"),
        ("no-equals-sign", "key=value"),
    ],
)
def test_invalid_values_name_the_field_and_value(override, message):
    with pytest.raises(ScenarioError, match=None) as err:
        load_scenario("paper-6", [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_preset_and_missing_file():
    with pytest.raises(ScenarioError, match="unknown scenario 'paper-7'"):
        load_scenario("paper-7")
    with pytest.raises(ScenarioError, match="does not exist"):
        load_scenario("nowhere.yaml")
