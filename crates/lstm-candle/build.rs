//! With the `cuda` feature, compiles the fused recurrence's CUDA kernels to PTX
//! (loaded by `fused_cuda.rs` at run time); without it, does nothing.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "cuda")]
    compile_kernels();
}

#[cfg(feature = "cuda")]
fn compile_kernels() {
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let ptx = cudaforge::KernelBuilder::new()
        .source_files(["src/cuda/recurrence.cu"])
        .arg("-O3")
        .arg("-std=c++17")
        .build_ptx()
        .unwrap_or_else(|error| panic!("compiling src/cuda/recurrence.cu with nvcc: {error}"));
    ptx.write(out_dir.join("recurrence_ptx.rs"))
        .unwrap_or_else(|error| panic!("writing the PTX bindings: {error}"));
}
