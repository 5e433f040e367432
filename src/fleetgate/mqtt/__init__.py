"""MQTT adapters: the only package that imports aiomqtt / paho."""
