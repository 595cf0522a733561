"""Type stubs of the extension module ``tinyscore._native`` (Rust, PyO3; ``python/src``).

Buffers are little-endian float32 bytes, row-major (n, D); the public API in ``tinyscore`` and
``tinyscore.torch`` wraps them in numpy arrays. Every error is raised as a class of
``tinyscore.errors``.

A network is named by its family ``arch`` (``"mlp"``: ScoreNet v1, sizes ``dim``, ``hidden``,
``freqs``, ``blocks``; ``"conv"``: ScoreNet-conv, sizes ``channels``, ``length``, ``width``,
``levels``, ``blocks``, ``kernel``, ``freqs``, ``temb``) and a dict of its sizes;
``read_checkpoint`` returns both (``arch``, ``sizes``), and ``dims`` = (D, H, F, B) for an mlp.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple

_Progress = Optional[Callable[[int, int], Any]]

MAX_EPS_BATCH: int

class NativeModel:
    @staticmethod
    def load(data: bytes) -> "NativeModel": ...
    def to_bytes(self) -> bytes: ...
    @property
    def dim(self) -> int: ...
    def report(self, name: str) -> str: ...
    def info(self) -> Dict[str, Any]: ...
    def eps(self, x: bytes, t: bytes, threads: int, progress: _Progress = None) -> bytes: ...
    def sample(self, n: int, seed: int, flags: List[str], progress: _Progress = None) -> bytes: ...
    def denoise(
        self,
        y: bytes,
        sigma: Optional[float],
        method: str,
        steps: int,
        draws: int,
        seed: int,
        progress: _Progress = None,
    ) -> bytes: ...
    def impute(
        self,
        y: bytes,
        mask: bytes,
        steps: int,
        draws: int,
        resample: int,
        seed: int,
        progress: _Progress = None,
    ) -> bytes: ...
    def likelihood(
        self,
        x: bytes,
        steps: int,
        exact: bool,
        hutchinson: Optional[int],
        seed: int,
        progress: _Progress = None,
    ) -> Tuple[bytes, str]: ...

def convert(
    checkpoint: str, quant: str, raw: bool, calib: Optional[str], groups: Optional[int]
) -> Tuple[bytes, int, float]: ...
def write_checkpoint(
    path: str,
    arch: str,
    sizes: Dict[str, int],
    params: bytes,
    ema: Optional[bytes],
    mean: bytes,
    std: bytes,
    data: str,
    flags: List[str],
    step: int,
) -> None: ...
def read_checkpoint(path: str) -> Dict[str, Any]: ...
def param_shapes(dim: int, hidden: int, freqs: int, blocks: int) -> List[Tuple[str, List[int]]]: ...
def conv_param_shapes(sizes: Dict[str, int]) -> List[Tuple[str, List[int]]]: ...
def frequencies(freqs: int) -> bytes: ...
def dataset(spec: str, n: int, seed: int) -> Tuple[bytes, int]: ...
def evaluate(samples: bytes, dim: int, spec: str, projections: int, seed: int) -> Dict[str, Any]: ...
def process_table(flags: List[str]) -> Dict[str, Any]: ...
def marginal(flags: List[str], t: bytes) -> Tuple[bytes, bytes]: ...
