"""wldetect: language identifiers trained on frozen LLM token embeddings, and token-masking experiments.

`from wldetect import WLDetect` gives the NumPy-only detector; importing the package pulls in neither torch
nor the training code.
"""

__version__ = "0.1.0"
__all__ = ["WLDetect", "__version__"]


def __getattr__(name: str):
    if name == "WLDetect":
        from wldetect.detect import WLDetect

        return WLDetect
    raise AttributeError(f"module 'wldetect' has no attribute {name!r}")
