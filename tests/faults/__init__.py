"""Fault-injection helpers: a misbehaving local HTTP engine, a canary server, and a rig that
runs a real Sampler with a fake NVML backend behind a real ExporterHTTPServer."""
