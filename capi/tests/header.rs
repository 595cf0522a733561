//! The checked-in C header is what cbindgen makes of `src/lib.rs` today.
//! `TINYSCORE_BLESS=1 cargo test -p tinyscore-capi --test header` rewrites it.

use std::path::Path;

#[test]
fn the_checked_in_header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("UTF-8 header");
    let path = crate_dir.join("include/tinyscore.h");
    if std::env::var_os("TINYSCORE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("writing the header");
        println!("wrote {}", path.display());
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "include/tinyscore.h is out of date: run `TINYSCORE_BLESS=1 cargo test -p tinyscore-capi --test header`"
    );
    // The functions C firmware needs are all there.
    for name in [
        "ts_required_bytes",
        "ts_open",
        "ts_sampler_start",
        "ts_sampler_step",
        "ts_sampler_read",
        "ts_denoise",
    ] {
        assert!(generated.contains(name), "{name} is missing from the header");
    }
}
