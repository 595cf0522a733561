//! Static capacities of this build of the engine, the bounds of DESIGN.md §2: a file that
//! exceeds them is refused at load (`format::FormatError::BadDims`), never truncated. A leaf
//! module: the parser, the network and the host tools all size their buffers from it.
/// Largest data dimension D.
pub const MAX_DIM: usize = 256;
/// Largest hidden width H.
pub const MAX_HIDDEN: usize = 512;
/// Largest number of time features F.
pub const MAX_FREQS: usize = 64;
/// Largest number of residual blocks B.
pub const MAX_BLOCKS: usize = 8;
