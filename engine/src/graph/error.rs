//! Why a layer graph was refused: one variant per way a graph can be wrong, each naming the
//! layer (its index in the list) and what was found.

/// A layer graph that cannot be evaluated. Every check of [`super::Graph::new`] has its variant;
/// a hand-made file for each is in the tests (`tools/tests/graph_format.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum GraphError {
    /// No layers, or more than [`super::MAX_LAYERS`].
    LayerCount {
        /// Layers stated.
        found: usize,
    },
    /// The op code is not one this reader knows.
    UnknownOp {
        /// The layer.
        layer: usize,
        /// Its code.
        code: u8,
    },
    /// A field is out of range or set where the op has no use for it.
    BadField {
        /// The layer.
        layer: usize,
        /// Which field.
        field: &'static str,
    },
    /// A layer reads a value that does not exist yet (a later layer's output, or past the end):
    /// the list is not in evaluation order.
    Reference {
        /// The layer.
        layer: usize,
        /// The value it names.
        value: u16,
    },
    /// A tensor reference is outside the table, not a parameter tensor, or used twice.
    Tensor {
        /// The layer.
        layer: usize,
        /// The tensor index.
        tensor: u16,
    },
    /// A parameter tensor is referenced by no layer.
    UnusedTensor {
        /// The tensor index.
        tensor: usize,
    },
    /// Shapes do not fit the op's rule, or the record states another shape than the rule gives.
    Shape {
        /// The layer.
        layer: usize,
        /// What does not fit.
        what: &'static str,
    },
    /// A value other than the output is never read.
    UnusedValue {
        /// The value.
        value: usize,
    },
    /// A layer of the time branch (depends on t only) comes after a layer of the data branch.
    TimeAfterData {
        /// The layer.
        layer: usize,
    },
    /// The last layer's output is not a data value of the input's shape.
    Output,
    /// A value's arena range lies outside its region.
    ArenaOverflow {
        /// The layer that writes the value.
        layer: usize,
    },
    /// Two values that are live at the same time share arena words.
    ArenaOverlap {
        /// The earlier value's layer.
        first: usize,
        /// The later value's layer.
        second: usize,
    },
    /// A region is not exactly as large as its values need: its size must be the end of its last
    /// value, and no more than all its values laid end to end.
    ArenaSize {
        /// "time" or "data".
        region: &'static str,
        /// Stated, in words.
        found: usize,
        /// The end of its last value (words).
        needed: usize,
    },
    /// The stated scratch size is not the one the layers need.
    Scratch {
        /// Stated, in words.
        found: usize,
        /// Needed, in words.
        needed: usize,
    },
    /// A size or count overflows.
    Overflow {
        /// The layer.
        layer: usize,
    },
}

impl core::fmt::Display for GraphError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::LayerCount { found } => {
                write!(f, "graph has {found} layers, expected 1..={}", super::MAX_LAYERS)
            }
            Self::UnknownOp { layer, code } => write!(f, "layer {layer}: unknown op code {code}"),
            Self::BadField { layer, field } => write!(f, "layer {layer}: bad {field} field"),
            Self::Reference { layer, value } => {
                write!(f, "layer {layer} reads value {value}, which is not written before it")
            }
            Self::Tensor { layer, tensor } => {
                write!(f, "layer {layer}: tensor {tensor} is missing, not a parameter, or used twice")
            }
            Self::UnusedTensor { tensor } => write!(f, "parameter tensor {tensor} is used by no layer"),
            Self::Shape { layer, what } => write!(f, "layer {layer}: shape mismatch ({what})"),
            Self::UnusedValue { value } => write!(f, "value {value} is never read"),
            Self::TimeAfterData { layer } => {
                write!(f, "layer {layer} depends on t only but follows a layer of the data branch")
            }
            Self::Output => write!(f, "the last layer's output is not a data value of the input's shape"),
            Self::ArenaOverflow { layer } => write!(f, "layer {layer}: output lies outside its arena region"),
            Self::ArenaOverlap { first, second } => {
                write!(f, "outputs of layers {first} and {second} are live at once and share arena words")
            }
            Self::ArenaSize { region, found, needed } => write!(
                f,
                "{region} region of {found} words stated, its values end at {needed} (and may not exceed their sum)"
            ),
            Self::Scratch { found, needed } => {
                write!(f, "scratch of {found} words stated, the layers need {needed}")
            }
            Self::Overflow { layer } => write!(f, "layer {layer}: a size overflows"),
        }
    }
}

impl core::error::Error for GraphError {}
