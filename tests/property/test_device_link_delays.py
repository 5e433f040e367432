"""The device link's reconnect delays, as paho gets them."""

from hypothesis import given
from hypothesis import strategies as st

from fleetgate.config import MqttSettings
from fleetgate.mqtt.device_link import reconnect_delays

seconds = st.floats(min_value=0.001, max_value=3600, allow_nan=False)


@given(seconds, seconds)
def test_paho_never_gets_a_zero_or_inverted_delay(low: float, high: float) -> None:
    settings = MqttSettings(reconnect_min=low, reconnect_max=high)
    paho_min, paho_max = reconnect_delays(settings)
    assert paho_min >= 1
    assert paho_max >= paho_min
    assert paho_max >= high


def test_a_maximum_below_one_second_still_waits_a_second() -> None:
    # CI once found serve reconnecting in a tight loop with reconnect_max=0.5.
    assert reconnect_delays(MqttSettings(reconnect_min=0.5, reconnect_max=0.5)) == (1, 1)
