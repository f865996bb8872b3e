"""Stubs of the compiled module; the documented API is ``saener.Pipeline`` (__init__.py)."""

from os import PathLike
from typing import Optional, Union

PIECE_BYTES: int

class Pipeline:
    def __init__(
        self,
        profile: str,
        sae: Optional[Union[str, PathLike[str]]] = None,
        model: Optional[Union[str, PathLike[str]]] = None,
        batch_size: int = 16,
        default_sae: Optional[Union[str, PathLike[str]]] = None,
    ) -> None: ...
    def annotate_json(
        self, ids: list[str], texts: list[str], chunk: int
    ) -> list[tuple[Optional[str], Optional[str]]]: ...
    def residuals(self, text: str, layer: int) -> tuple[bytes, int, int]: ...
    def codes(self, text: str) -> tuple[list[int], list[int], bytes, int]: ...
    @property
    def layer(self) -> int: ...
    @property
    def model_id(self) -> str: ...
    @property
    def sae_id(self) -> str: ...

def shipped_profiles(default_sae: Optional[Union[str, PathLike[str]]] = None) -> list[str]: ...
def fetch_model(python: str) -> str: ...
