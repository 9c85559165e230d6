#!/usr/bin/env bash
# Entry point named in the docs; the rig itself is rig.py (python3, stdlib only).
exec python3 "$(dirname "$0")/rig.py" "$@"
