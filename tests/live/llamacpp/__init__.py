"""Helpers for the live llama.cpp tests: a tiny GGUF writer and a llama-server fixture."""
