//! Data sets: the built-in toys and real sets, CSV / `.npy` files, hold-out splits and the
//! per-dimension normalisation that the model file stores.
//!
//! Every data set is a row-major `(n, dim)` matrix of f32. The 2-D toys are generated from the
//! seed with the engine's counter-based generator (example i uses Philox counter words
//! `(·, i, ·, stream::DATA)`), so each example is drawn independently of the others: any prefix
//! or suffix of a toy set is itself an i.i.d. sample, which keeps hold-out splits honest.
//! Their definitions follow the usual toy densities of FFJORD (Grathwohl et al. 2019) and
//! scikit-learn's `make_moons`.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use tinyscore_engine::rng::{bits4, normal4, uniform};

/// Window length of the `ecg` data set, in samples (64 samples at 360 Hz ≈ 0.18 s).
pub const ECG_WINDOW: usize = 64;
/// Hop between consecutive `ecg` windows, in samples: half a window, so windows overlap by
/// half. (With the last-20 % hold-out, only the first held-out window shares 32 samples with
/// the training windows.)
pub const ECG_STRIDE: usize = 32;

/// The built-in data sets: five 2-D toys generated from the seed, and two real sets read from
/// [`data_dir`].
pub const BUILTIN: &[&str] =
    &["moons", "swissroll", "8gaussians", "checkerboard", "pinwheel", "digits", "ecg"];

/// A data set: `values` is the row-major `(n, dim)` matrix of examples.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Number of values per example.
    pub dim: usize,
    /// Row-major (n, dim) examples.
    pub values: Vec<f32>,
    /// Where the data came from (a built-in name or a path), for messages and metadata.
    pub source: String,
}

impl Dataset {
    /// Wraps row-major `values` of `dim` columns.
    ///
    /// # Panics
    /// If `dim` is 0 or `values.len()` is not a multiple of `dim` (a caller bug).
    pub fn from_rows(dim: usize, values: Vec<f32>, source: impl Into<String>) -> Self {
        assert!(
            dim > 0 && values.len() % dim == 0,
            "from_rows: {} values do not make rows of {dim}",
            values.len()
        );
        Self { dim, values, source: source.into() }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.values.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Example `i` (length `dim`).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// Splits off the last `round(frac·n)` examples (frac clamped to [0, 1]) as the held-out
    /// set: `(train, held_out)`. Deterministic and order-preserving, so for a time series
    /// (`ecg`) the held-out part is the end of the recording.
    pub fn split_holdout(&self, frac: f64) -> (Dataset, Dataset) {
        let n = self.len();
        let frac = if frac.is_nan() { 0.0 } else { frac.clamp(0.0, 1.0) };
        let held = ((n as f64 * frac).round() as usize).min(n);
        let cut = (n - held) * self.dim;
        (
            Dataset {
                dim: self.dim,
                values: self.values[..cut].to_vec(),
                source: format!("{} (train)", self.source),
            },
            Dataset {
                dim: self.dim,
                values: self.values[cut..].to_vec(),
                source: format!("{} (held-out)", self.source),
            },
        )
    }
}

/// Why a data set could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The spec is neither a built-in name nor an existing file.
    #[error("unknown data set '{spec}': not a built-in ({}) and no such file", BUILTIN.join(", "))]
    Unknown {
        /// What was asked for.
        spec: String,
    },
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A directory was given where a file was expected.
    #[error("{}: is a directory, not a data file", path.display())]
    IsDirectory {
        /// The path.
        path: PathBuf,
    },
    /// The file's extension is not one of `.csv`, `.csv.gz`, `.npy`.
    #[error("{}: unsupported file type (expected .csv, .csv.gz or .npy)", path.display())]
    UnsupportedType {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no examples.
    #[error("{}: no data (the file is empty or has only comments)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A CSV field is not a number.
    #[error("{}: line {line}, column {column}: '{text}' is not a number{hint}", path.display())]
    NotANumber {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (field).
        column: usize,
        /// The field's text (shortened).
        text: String,
        /// An extra hint (for a header line).
        hint: &'static str,
    },
    /// A value is NaN or infinite.
    #[error("{}: line {line}, column {column}: value '{text}' is not finite", path.display())]
    NotFinite {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 for binary files).
        line: usize,
        /// 1-based column.
        column: usize,
        /// The value's text.
        text: String,
    },
    /// A CSV line has a different number of columns than the first.
    #[error("{}: line {line} has {found} columns, expected {expected} like the first data line", path.display())]
    Ragged {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Columns found.
        found: usize,
        /// Columns of the first data line.
        expected: usize,
    },
    /// A `.npy` file is malformed or of an unsupported kind.
    #[error("{}: bad .npy file: {reason}", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A generated data set was asked for with no examples.
    #[error("data set '{name}': the number of examples must be at least 1")]
    NoExamples {
        /// The built-in name.
        name: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DataError + '_ {
    move |source| DataError::Io { path: path.to_path_buf(), source }
}

/// Where shared data lives: `$TINYSCORE_DATA` if set, else the first existing of
/// `<repo>/../shared/data`, `./shared/data`, `../shared/data` (the first of them if none
/// exists, so that messages name a sensible place).
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TINYSCORE_DATA") {
        return PathBuf::from(dir);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = [
        repo.join("..").join("shared").join("data"),
        PathBuf::from("shared/data"),
        PathBuf::from("../shared/data"),
    ];
    candidates.iter().find(|p| p.is_dir()).unwrap_or(&candidates[0]).clone()
}

/// Loads a data set: a built-in name (see [`BUILTIN`]) or a file (`.csv`, `.csv.gz`, `.npy`).
///
/// `n` is the number of examples of a generated toy and `seed` its seed; both are ignored for
/// files, `digits` and `ecg`.
pub fn load(spec: &str, n: usize, seed: u64) -> Result<Dataset, DataError> {
    let toy = |f: fn(u64, u32) -> [f32; 2]| -> Result<Dataset, DataError> {
        if n == 0 {
            return Err(DataError::NoExamples { name: spec.to_string() });
        }
        let values = (0..n).flat_map(|i| f(seed, i as u32)).collect();
        Ok(Dataset::from_rows(2, values, spec))
    };
    match spec {
        "moons" => toy(moons),
        "swissroll" => toy(swissroll),
        "8gaussians" => toy(eight_gaussians),
        "checkerboard" => toy(checkerboard),
        "pinwheel" => toy(pinwheel),
        "digits" => {
            let path = data_dir().join("digits.csv.gz");
            let all = read_csv(&path)?;
            // 64 grey levels, then the label, which a generative model of images does not use.
            let cols = all.dim;
            if cols != 65 {
                return Err(DataError::Ragged { path, line: 1, found: cols, expected: 65 });
            }
            let values = all.values.chunks_exact(cols).flat_map(|r| r[..64].iter().copied()).collect();
            Ok(Dataset::from_rows(64, values, "digits"))
        }
        _ if spec == "ecg" || spec.starts_with("ecg:") => {
            // `ecg` has windows of ECG_WINDOW samples; `ecg:N` of N (2..=4096), hop N/2.
            let (window, hop) = match spec.strip_prefix("ecg:") {
                None => (ECG_WINDOW, ECG_STRIDE),
                Some(n) => match n.parse::<usize>() {
                    Ok(w) if (2..=4096).contains(&w) => (w, w / 2),
                    _ => return Err(DataError::Unknown { spec: spec.to_string() }),
                },
            };
            let path = data_dir().join("ecg-mitbih-208.csv");
            let signal = read_csv(&path)?;
            if signal.dim != 1 {
                return Err(DataError::Ragged { path, line: 1, found: signal.dim, expected: 1 });
            }
            let s = &signal.values;
            let count = if s.len() < window { 0 } else { (s.len() - window) / hop + 1 };
            if count == 0 {
                return Err(DataError::Empty { path });
            }
            let values = (0..count).flat_map(|w| s[w * hop..w * hop + window].iter().copied()).collect();
            Ok(Dataset::from_rows(window, values, spec))
        }
        _ => {
            let path = Path::new(spec);
            if !path.exists() {
                return Err(DataError::Unknown { spec: spec.to_string() });
            }
            let name = path.file_name().map(|s| s.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
            if path.is_dir() {
                Err(DataError::IsDirectory { path: path.to_path_buf() })
            } else if name.ends_with(".npy") {
                read_npy(path)
            } else if name.ends_with(".csv") || name.ends_with(".csv.gz") {
                read_csv(path)
            } else {
                Err(DataError::UnsupportedType { path: path.to_path_buf() })
            }
        }
    }
}

/// Uniforms in [0, 1) and standard normals of toy example `i`.
fn draws(seed: u64, i: u32) -> ([f32; 4], [f32; 4]) {
    let w = bits4(seed, 0, i, 0, tinyscore_engine::rng::stream::DATA);
    (w.map(uniform), normal4(seed, 0, i, 1, tinyscore_engine::rng::stream::DATA))
}

const PI: f32 = core::f32::consts::PI;

/// Two interleaved half circles (scikit-learn `make_moons`), Gaussian noise σ = 0.05:
/// upper `(cos θ, sin θ)`, lower `(1 − cos θ, 0.5 − sin θ)`, θ ~ U[0, π).
fn moons(seed: u64, i: u32) -> [f32; 2] {
    let (u, z) = draws(seed, i);
    let theta = PI * u[0];
    let (c, s) = (libm::cosf(theta), libm::sinf(theta));
    let p = if u[1] < 0.5 { [c, s] } else { [1.0 - c, 0.5 - s] };
    [p[0] + 0.05 * z[0], p[1] + 0.05 * z[1]]
}

/// The 2-D Swiss roll (FFJORD): r = 1.5π(1 + 2u), `(r cos r, r sin r)` plus N(0, 1) noise,
/// all divided by 5.
fn swissroll(seed: u64, i: u32) -> [f32; 2] {
    let (u, z) = draws(seed, i);
    let r = 1.5 * PI * (1.0 + 2.0 * u[0]);
    [(r * libm::cosf(r) + z[0]) / 5.0, (r * libm::sinf(r) + z[1]) / 5.0]
}

/// Eight Gaussians on a circle (FFJORD): centres 4·(cos kπ/4, sin kπ/4), σ = 0.5, all divided
/// by √2.
fn eight_gaussians(seed: u64, i: u32) -> [f32; 2] {
    let (u, z) = draws(seed, i);
    let k = ((u[0] * 8.0) as usize).min(7) as f32;
    let a = k * PI / 4.0;
    let s = core::f32::consts::SQRT_2;
    [(4.0 * libm::cosf(a) + 0.5 * z[0]) / s, (4.0 * libm::sinf(a) + 0.5 * z[1]) / s]
}

/// A 4×4 checkerboard on [−4, 4]² (FFJORD): x₁ ~ U[−2, 2), x₂ in the squares of matching
/// parity, both scaled by 2.
fn checkerboard(seed: u64, i: u32) -> [f32; 2] {
    let (u, _) = draws(seed, i);
    let x1 = 4.0 * u[0] - 2.0;
    let x2 = u[1] - if u[2] < 0.5 { 0.0 } else { 2.0 } + libm::floorf(x1).rem_euclid(2.0);
    [2.0 * x1, 2.0 * x2]
}

/// A five-armed pinwheel (FFJORD, after Johnson et al. 2016): radial σ 0.3, tangential σ 0.1,
/// rate 0.25; a point `f = (1 + 0.3 z₀, 0.1 z₁)` of arm k is rotated by
/// `2πk/5 + 0.25·exp(f₀)` and scaled by 2.
fn pinwheel(seed: u64, i: u32) -> [f32; 2] {
    let (u, z) = draws(seed, i);
    let k = ((u[0] * 5.0) as usize).min(4) as f32;
    let (f0, f1) = (1.0 + 0.3 * z[0], 0.1 * z[1]);
    let angle = 2.0 * PI * k / 5.0 + 0.25 * libm::expf(f0);
    let (c, s) = (libm::cosf(angle), libm::sinf(angle));
    // [f0, f1] · [[c, −s], [s, c]] (row vector times rotation, as FFJORD's einsum).
    [2.0 * (f0 * c + f1 * s), 2.0 * (-f0 * s + f1 * c)]
}

/// Reads a CSV file (or `.csv.gz`): one example per line, comma-separated numbers, blank lines
/// and lines starting with `#` ignored. Refuses text, NaN, infinities, ragged rows, empty
/// files and directories, naming the file, line and column.
pub fn read_csv(path: &Path) -> Result<Dataset, DataError> {
    if path.is_dir() {
        return Err(DataError::IsDirectory { path: path.to_path_buf() });
    }
    let mut bytes = Vec::new();
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let gz = path.to_string_lossy().to_ascii_lowercase().ends_with(".gz");
    if gz {
        flate2::read::GzDecoder::new(file).read_to_end(&mut bytes).map_err(io_err(path))?;
    } else {
        io::BufReader::new(file).read_to_end(&mut bytes).map_err(io_err(path))?;
    }
    let text = String::from_utf8(bytes).map_err(|e| DataError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, format!("not UTF-8 text ({e})")),
    })?;
    parse_csv(path, &text)
}

fn parse_csv(path: &Path, text: &str) -> Result<Dataset, DataError> {
    let mut dim = 0usize;
    let mut values = Vec::new();
    let mut first_data = true;
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut cols = 0usize;
        for (c, field) in trimmed.split(',').enumerate() {
            let field = field.trim();
            let column = c + 1;
            let v: f32 = field.parse().map_err(|_| DataError::NotANumber {
                path: path.to_path_buf(),
                line,
                column,
                text: field.chars().take(32).collect(),
                hint: if first_data { " (a header line must start with '#')" } else { "" },
            })?;
            if !v.is_finite() {
                return Err(DataError::NotFinite {
                    path: path.to_path_buf(),
                    line,
                    column,
                    text: field.to_string(),
                });
            }
            values.push(v);
            cols += 1;
        }
        if first_data {
            dim = cols;
            first_data = false;
        } else if cols != dim {
            return Err(DataError::Ragged { path: path.to_path_buf(), line, found: cols, expected: dim });
        }
    }
    if values.is_empty() {
        return Err(DataError::Empty { path: path.to_path_buf() });
    }
    Ok(Dataset::from_rows(dim, values, path.display().to_string()))
}

/// Writes `values` (row-major, `dim` columns) as CSV, one example per line. Values use Rust's
/// shortest round-trip formatting of f32 (`{}`), so [`read_csv`] reads back the same bits.
pub fn write_csv(w: &mut impl Write, dim: usize, values: &[f32]) -> io::Result<()> {
    let mut line = String::new();
    for row in values.chunks(dim.max(1)) {
        line.clear();
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            fmt::Write::write_fmt(&mut line, format_args!("{v}")).map_err(io::Error::other)?;
        }
        line.push('\n');
        w.write_all(line.as_bytes())?;
    }
    Ok(())
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Reads a `.npy` array: little-endian `<f4` or `<f8`, C order, 2-D `(n, dim)` (a 1-D `(n,)`
/// array is read as n examples of dimension 1). f64 values are rounded to f32; every value must
/// be finite.
pub fn read_npy(path: &Path) -> Result<Dataset, DataError> {
    if path.is_dir() {
        return Err(DataError::IsDirectory { path: path.to_path_buf() });
    }
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let bad = |reason: String| DataError::Npy { path: path.to_path_buf(), reason };
    if bytes.len() < 10 || &bytes[..6] != NPY_MAGIC {
        return Err(bad("missing the \\x93NUMPY magic".into()));
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => {
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(bad(format!("unsupported format version {v}"))),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad("truncated header".into()))?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header is not text".into()))?;
    let descr = dict_value(header, "descr").ok_or_else(|| bad("header has no 'descr'".into()))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let size = match descr {
        "<f4" => 4,
        "<f8" => 8,
        other => {
            return Err(bad(format!("dtype '{other}' is not supported (expected little-endian <f4 or <f8)")))
        }
    };
    let fortran =
        dict_value(header, "fortran_order").ok_or_else(|| bad("header has no 'fortran_order'".into()))?;
    if fortran != "False" {
        return Err(bad("Fortran-order arrays are not supported (save with C order)".into()));
    }
    let shape = dict_value(header, "shape").ok_or_else(|| bad("header has no 'shape'".into()))?;
    let dims: Vec<usize> = shape
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad(format!("bad shape {shape}")))?;
    let (n, dim) = match dims[..] {
        [n] => (n, 1),
        [n, d] => (n, d),
        _ => return Err(bad(format!("shape {shape} is not 2-D"))),
    };
    let count = n.checked_mul(dim).ok_or_else(|| bad(format!("shape {shape} is too large")))?;
    let data = &bytes[end..];
    if count == 0 {
        return Err(DataError::Empty { path: path.to_path_buf() });
    }
    if count.checked_mul(size) != Some(data.len()) {
        return Err(bad(format!(
            "shape {shape} needs {} data bytes, found {}",
            count.saturating_mul(size),
            data.len()
        )));
    }
    let values: Vec<f32> = if size == 4 {
        data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    } else {
        data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32).collect()
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(DataError::NotFinite {
            path: path.to_path_buf(),
            line: i / dim + 1,
            column: i % dim + 1,
            text: values[i].to_string(),
        });
    }
    Ok(Dataset::from_rows(dim, values, path.display().to_string()))
}

/// The text of `key`'s value in a `.npy` header (a Python dict literal); a tuple value is
/// returned with its parentheses.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pos = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[pos..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') { rest.find(')')? + 1 } else { rest.find([',', '}'])? };
    Some(rest[..end].trim())
}

/// Writes `values` (row-major, `dim` columns) as a version 1.0 `.npy` array of `<f4`, shape
/// `(n, dim)`.
pub fn write_npy(w: &mut impl Write, dim: usize, values: &[f32]) -> io::Result<()> {
    let n = values.len() / dim.max(1);
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {dim}), }}");
    // Pad with spaces so that magic + version + length + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    w.write_all(NPY_MAGIC)?;
    w.write_all(&[1, 0])?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for v in values {
        w.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

/// Per-dimension normalisation `x ↦ (x − mean)/std`, stored in checkpoints and model files.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    /// (D,) per-dimension mean.
    pub mean: Vec<f32>,
    /// (D,) per-dimension standard deviation, always > 0.
    pub std: Vec<f32>,
}

impl Normalization {
    /// The identity normalisation for `dim` dimensions (mean 0, std 1).
    pub fn identity(dim: usize) -> Self {
        Self { mean: vec![0.0; dim], std: vec![1.0; dim] }
    }

    /// Mean and population standard deviation of each dimension (accumulated in f64). A
    /// dimension whose std is below 1e-6 of the largest (a constant pixel, say) is floored to
    /// that, and if every dimension is constant, std is 1: never 0.
    pub fn fit(data: &Dataset) -> Self {
        let (n, d) = (data.len(), data.dim);
        let mut mean = vec![0.0f64; d];
        let mut var = vec![0.0f64; d];
        for i in 0..n {
            for (m, &x) in mean.iter_mut().zip(data.row(i)) {
                *m += x as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
        for i in 0..n {
            for ((s, &x), m) in var.iter_mut().zip(data.row(i)).zip(&mean) {
                *s += (x as f64 - m) * (x as f64 - m);
            }
        }
        let std: Vec<f64> = var.iter().map(|s| (s / n.max(1) as f64).sqrt()).collect();
        let max = std.iter().cloned().fold(0.0f64, f64::max);
        let floor = if max > 0.0 { 1e-6 * max } else { 1.0 };
        Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std: std.iter().map(|&s| (s.max(floor) as f32).max(f32::MIN_POSITIVE)).collect(),
        }
    }

    /// One mean and standard deviation per channel of a signal of `channels` channels ×
    /// D/`channels` samples (channel-major rows), over every sample of every row, repeated
    /// along the channel's samples: what a convolution needs, since its weights are shared
    /// along the signal (a per-sample normalisation would give each position its own scale).
    /// Std is floored as in [`Normalization::fit`].
    ///
    /// # Panics
    /// If `channels` is 0 or does not divide D.
    pub fn fit_channels(data: &Dataset, channels: usize) -> Self {
        assert!(channels > 0 && data.dim % channels == 0, "{channels} channels do not divide {}", data.dim);
        let (n, len) = (data.len(), data.dim / channels);
        let count = (n * len).max(1) as f64;
        let mut mean = vec![0.0f64; channels];
        let mut std = vec![0.0f64; channels];
        for (c, (m, s)) in mean.iter_mut().zip(&mut std).enumerate() {
            let values = || (0..n).flat_map(|i| &data.row(i)[c * len..(c + 1) * len]);
            *m = values().map(|&x| x as f64).sum::<f64>() / count;
            *s = (values().map(|&x| (x as f64 - *m) * (x as f64 - *m)).sum::<f64>() / count).sqrt();
        }
        let max = std.iter().cloned().fold(0.0f64, f64::max);
        let floor = if max > 0.0 { 1e-6 * max } else { 1.0 };
        let expand = |v: &[f64], f: &dyn Fn(f64) -> f32| -> Vec<f32> {
            v.iter().flat_map(|&x| std::iter::repeat(f(x)).take(len)).collect()
        };
        Self {
            mean: expand(&mean, &|m| m as f32),
            std: expand(&std, &|s| (s.max(floor) as f32).max(f32::MIN_POSITIVE)),
        }
    }

    /// Normalises row-major rows in place: `x ← (x − mean)/std`.
    pub fn apply(&self, values: &mut [f32]) {
        let d = self.mean.len();
        for row in values.chunks_exact_mut(d) {
            for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = (*x - m) / s;
            }
        }
    }

    /// Maps normalised rows back to data units in place: `x ← x·std + mean`.
    pub fn invert(&self, values: &mut [f32]) {
        let d = self.mean.len();
        for row in values.chunks_exact_mut(d) {
            for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = *x * s + m;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tinyscore-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn csv_error(name: &str, text: &str) -> DataError {
        let p = tmp(name);
        std::fs::write(&p, text).unwrap();
        read_csv(&p).unwrap_err()
    }

    fn extent(d: &Dataset) -> [(f32, f32); 2] {
        let mut e = [(f32::INFINITY, f32::NEG_INFINITY); 2];
        for i in 0..d.len() {
            for (k, &v) in d.row(i).iter().enumerate() {
                e[k] = (e[k].0.min(v), e[k].1.max(v));
            }
        }
        e
    }

    #[test]
    fn toys_have_their_shapes_and_extents() {
        // (name, expected box (xmin, xmax, ymin, ymax) of the bulk, |mean| bound)
        let cases: [(&str, [f32; 4]); 5] = [
            ("moons", [-1.3, 2.3, -0.8, 1.3]),
            ("swissroll", [-4.0, 4.0, -4.0, 4.0]),
            ("8gaussians", [-4.5, 4.5, -4.5, 4.5]),
            ("checkerboard", [-4.0, 4.0, -4.0, 4.0]),
            ("pinwheel", [-6.0, 6.0, -6.0, 6.0]),
        ];
        for (name, b) in cases {
            let d = load(name, 4000, 7).unwrap();
            assert_eq!((d.dim, d.len()), (2, 4000), "{name}");
            assert!(d.values.iter().all(|v| v.is_finite()), "{name}");
            let e = extent(&d);
            assert!(e[0].0 >= b[0] && e[0].1 <= b[1] && e[1].0 >= b[2] && e[1].1 <= b[3], "{name}: {e:?}");
            // Spread out: the extent covers most of the box, not a point.
            assert!(
                e[0].1 - e[0].0 > 0.6 * (b[1] - b[0]) && e[1].1 - e[1].0 > 0.6 * (b[3] - b[2]),
                "{name}: {e:?}"
            );
            // Same seed, same data; another seed, other data.
            assert_eq!(load(name, 4000, 7).unwrap(), d);
            assert_ne!(load(name, 4000, 8).unwrap().values, d.values);
            // A prefix of a larger set is the smaller set (examples are independent).
            assert_eq!(load(name, 100, 7).unwrap().values, d.values[..200]);
        }
        // Moons: both moons are populated, lower moon centred near (1, 0.25)… in x > 1.5 only the lower.
        let m = load("moons", 4000, 1).unwrap();
        let right = (0..m.len()).filter(|&i| m.row(i)[0] > 1.5).count();
        assert!(right > 200 && right < 1000, "{right}");
        assert!(matches!(load("moons", 0, 1), Err(DataError::NoExamples { .. })));
    }

    #[test]
    fn csv_round_trips_bit_exactly() {
        let values: Vec<f32> = vec![0.1, -1e-30, 3.4028235e38, 1.0 / 3.0, -0.0, 7.0, 1e-45, 12345.678];
        let mut buf = Vec::new();
        write_csv(&mut buf, 2, &values).unwrap();
        let p = tmp("round.csv");
        std::fs::write(&p, &buf).unwrap();
        let d = read_csv(&p).unwrap();
        assert_eq!(d.dim, 2);
        assert_eq!(
            d.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // Comments, blank lines, spaces and a gzip'd copy are read too.
        std::fs::write(&p, "# x,y\n\n 1 , 2\n#c\n3,4\n").unwrap();
        assert_eq!(read_csv(&p).unwrap().values, [1.0, 2.0, 3.0, 4.0]);
        let gz = tmp("round.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&buf).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        assert_eq!(load(gz.to_str().unwrap(), 0, 0).unwrap().values, d.values);
    }

    #[test]
    fn csv_rejects_bad_input() {
        let e = csv_error("text.csv", "1,2\n3,abc\n");
        assert!(matches!(e, DataError::NotANumber { line: 2, column: 2, .. }), "{e}");
        assert!(e.to_string().contains("text.csv") && e.to_string().contains("line 2, column 2"), "{e}");
        let e = csv_error("header.csv", "x,y\n1,2\n");
        assert!(e.to_string().contains("header"), "{e}");
        for (name, text) in [("nan.csv", "1,2\n3,NaN\n"), ("inf.csv", "1,inf\n"), ("big.csv", "1,1e39\n")] {
            let e = csv_error(name, text);
            assert!(matches!(e, DataError::NotFinite { .. }), "{name}: {e}");
        }
        let e = csv_error("ragged.csv", "1,2\n3\n");
        assert!(matches!(e, DataError::Ragged { line: 2, found: 1, expected: 2, .. }), "{e}");
        let e = csv_error("empty.csv", "");
        assert!(matches!(e, DataError::Empty { .. }), "{e}");
        let e = csv_error("comments.csv", "# only\n\n");
        assert!(matches!(e, DataError::Empty { .. }), "{e}");
        let e = csv_error("trailing.csv", "1,2,\n");
        assert!(matches!(e, DataError::NotANumber { column: 3, .. }), "{e}");
        let dir = tmp("adir.csv");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(read_csv(&dir), Err(DataError::IsDirectory { .. })));
        assert!(matches!(load(dir.to_str().unwrap(), 0, 0), Err(DataError::IsDirectory { .. })));
        assert!(matches!(read_csv(&tmp("missing.csv")), Err(DataError::Io { .. })));
        assert!(matches!(load("no-such-thing", 10, 0), Err(DataError::Unknown { .. })));
        let txt = tmp("data.txt");
        std::fs::write(&txt, "1\n").unwrap();
        assert!(matches!(load(txt.to_str().unwrap(), 0, 0), Err(DataError::UnsupportedType { .. })));
    }

    fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut b = NPY_MAGIC.to_vec();
        b.extend([1, 0]);
        b.extend((header.len() as u16).to_le_bytes());
        b.extend(header.as_bytes());
        b.extend(data);
        b
    }

    #[test]
    fn npy_f32_and_f64_round_trip() {
        let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.37 - 2.0).collect();
        let mut buf = Vec::new();
        write_npy(&mut buf, 3, &values).unwrap();
        let p = tmp("a.npy");
        std::fs::write(&p, &buf).unwrap();
        let d = load(p.to_str().unwrap(), 0, 0).unwrap();
        assert_eq!((d.dim, d.values.clone()), (3, values.clone()));

        let f64s: Vec<u8> = values.iter().flat_map(|&v| (v as f64).to_le_bytes()).collect();
        std::fs::write(&p, npy_bytes("<f8", "(4, 3)", &f64s)).unwrap();
        let d = read_npy(&p).unwrap();
        assert_eq!((d.dim, d.values), (3, values.clone()));

        let f32s: Vec<u8> = values.iter().flat_map(|&v| v.to_le_bytes()).collect();
        std::fs::write(&p, npy_bytes("<f4", "(12,)", &f32s)).unwrap();
        assert_eq!(read_npy(&p).unwrap().dim, 1);

        for (descr, shape, data, what) in [
            (">f4", "(4, 3)", &f32s[..], "dtype"),
            ("<i4", "(4, 3)", &f32s[..], "dtype"),
            ("<f4", "(4, 4)", &f32s[..], "data bytes"),
            ("<f4", "(2, 2, 3)", &f32s[..], "2-D"),
        ] {
            std::fs::write(&p, npy_bytes(descr, shape, data)).unwrap();
            let e = read_npy(&p).unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
        }
        std::fs::write(&p, b"not an npy file").unwrap();
        assert!(matches!(read_npy(&p), Err(DataError::Npy { .. })));
        let nan: Vec<u8> = [1.0f32, f32::NAN].iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&p, npy_bytes("<f4", "(1, 2)", &nan)).unwrap();
        assert!(matches!(read_npy(&p), Err(DataError::NotFinite { line: 1, column: 2, .. })));
    }

    fn shared(name: &str) -> bool {
        let ok = data_dir().join(name).is_file();
        if !ok {
            println!("skipped: shared data not found ({})", data_dir().join(name).display());
        }
        ok
    }

    #[test]
    fn digits_loads_1797_images() {
        if !shared("digits.csv.gz") {
            return;
        }
        let d = load("digits", 0, 0).unwrap();
        assert_eq!((d.len(), d.dim), (1797, 64));
        assert!(d.values.iter().all(|&v| (0.0..=16.0).contains(&v) && v.fract() == 0.0));
    }

    #[test]
    fn ecg_windows_and_holdout() {
        if !shared("ecg-mitbih-208.csv") {
            return;
        }
        let d128 = load("ecg:128", 0, 0).unwrap();
        assert_eq!(d128.dim, 128);
        assert_eq!(d128.row(2), &read_csv(&data_dir().join("ecg-mitbih-208.csv")).unwrap().values[128..256]);
        assert!(load("ecg:1", 0, 0).is_err() && load("ecg:x", 0, 0).is_err());
        let d = load("ecg", 0, 0).unwrap();
        let signal = read_csv(&data_dir().join("ecg-mitbih-208.csv")).unwrap().values;
        assert_eq!(d.dim, ECG_WINDOW);
        assert_eq!(d.len(), (signal.len() - ECG_WINDOW) / ECG_STRIDE + 1);
        assert_eq!(d.row(3), &signal[3 * ECG_STRIDE..3 * ECG_STRIDE + ECG_WINDOW]);
        let (train, held) = d.split_holdout(0.2);
        assert_eq!(train.len() + held.len(), d.len());
        assert_eq!(held.len(), (d.len() as f64 * 0.2).round() as usize);
        // The held-out windows are the last ones, in order: the end of the recording.
        assert_eq!(held.row(held.len() - 1), d.row(d.len() - 1));
        assert_eq!(held.row(0), d.row(train.len()));
        assert_eq!(train.row(0), d.row(0));
    }

    #[test]
    fn holdout_is_the_last_fraction() {
        let d = Dataset::from_rows(1, (0..10).map(|i| i as f32).collect(), "x");
        let (a, b) = d.split_holdout(0.2);
        assert_eq!((a.values, b.values), ((0..8).map(|i| i as f32).collect(), vec![8.0, 9.0]));
        assert_eq!(d.split_holdout(0.0).1.len(), 0);
        assert_eq!(d.split_holdout(1.0).0.len(), 0);
    }

    #[test]
    fn normalization_fits_and_inverts() {
        let d = Dataset::from_rows(3, vec![1.0, 5.0, 2.0, 3.0, 5.0, 4.0, 5.0, 5.0, 6.0], "x");
        let n = Normalization::fit(&d);
        assert_eq!(n.mean, [3.0, 5.0, 4.0]);
        assert!((n.std[0] - (8.0f32 / 3.0).sqrt()).abs() < 1e-6);
        assert!(n.std[1] > 0.0 && n.std[1] <= 1e-5, "constant column floored, not zero: {}", n.std[1]);
        let mut v = d.values.clone();
        n.apply(&mut v);
        n.invert(&mut v);
        for (a, b) in v.iter().zip(&d.values) {
            assert!((a - b).abs() < 1e-5);
        }
        let flat = Normalization::fit(&Dataset::from_rows(1, vec![2.0, 2.0], "c"));
        assert_eq!(flat.std, [1.0]);
    }
}
