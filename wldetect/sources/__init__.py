"""Where inputs come from: model repositories (hub.py), datasets (data.py), the embedded default (demo.py)."""
