//! Products with a weight matrix rounded to bf16, on Intel AMX tiles or with AVX-512 BF16 where the CPU has them.
//!
//! Generation steps a batch of melodies one token at a time, and at hidden 512
//! the f32 gate products are most of the step. A tile multiply (`TDPBF16PS`)
//! multiplies bf16 pairs and sums them in f32, several times faster than an
//! f32 product on the same core; where there are no tiles, AVX-512 BF16
//! (`VDPBF16PS`, on AMD Zen 4 and later and on Intel since Cooper Lake) does
//! the same sixteen columns at a time. Both operands are rounded to bf16 (8
//! bits of mantissa), so the results differ from the f32 product by about 1e-3
//! of their scale. Each output row depends only on its own input row (summed
//! pair by pair in depth order), so a melody comes out the same alone or in a
//! batch. Without either (another CPU; AMX also needs Linux) the same rounded
//! operands are multiplied in f32 with Candle, which sums in another order:
//! the results then differ from the bf16 kernels' in the last bits.

use candle_core::{Device, Result, Tensor};
use half::bf16;

/// Rows of a tile, and bf16 values in a tile row (64 bytes).
const TILE_ROWS: usize = 16;
const TILE_DEPTH: usize = 32;
/// Output rows one pass over the weights serves: the four accumulator tiles.
const PASS_ROWS: usize = 4 * TILE_ROWS;

/// Which code multiplies a [`Bf16Matrix`]; serialized as its [`name`](Self::name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bf16Kernel {
    /// Intel AMX tiles (`TDPBF16PS`).
    AmxTiles,
    /// AVX-512 BF16 (`VDPBF16PS`), sixteen columns to a register.
    Avx512Bf16,
    /// The rounded values back in f32, multiplied by Candle (any CPU or device).
    Candle,
}

impl Bf16Kernel {
    /// The name benchmarks print.
    pub fn name(self) -> &'static str {
        match self {
            Bf16Kernel::AmxTiles => "amx-tiles",
            Bf16Kernel::Avx512Bf16 => "avx512-bf16",
            Bf16Kernel::Candle => "f32-candle",
        }
    }

    /// Whether this CPU and process can run it.
    pub fn available(self) -> bool {
        match self {
            Bf16Kernel::AmxTiles => amx::available(),
            Bf16Kernel::Avx512Bf16 => avx512::available(),
            Bf16Kernel::Candle => true,
        }
    }
}

impl serde::Serialize for Bf16Kernel {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// A `(depth, width)` weight matrix rounded to bf16, laid out for `x @ W`.
#[derive(Clone)]
pub struct Bf16Matrix {
    depth: usize,
    width: usize,
    layout: Layout,
}

#[derive(Clone)]
enum Layout {
    /// Blocks of 16 (pairs of depth) x 16 (columns) x 2, one 1 KB block per
    /// (column block, depth block), column block major: the layout
    /// `TDPBF16PS` reads its second operand in, and in which each column
    /// block's pairs follow one another, 64 bytes each, as `VDPBF16PS` reads
    /// them. Depth is padded with zeros to a multiple of 32.
    Pairs {
        kernel: Bf16Kernel,
        values: std::sync::Arc<Vec<bf16>>,
    },
    /// The rounded values back in f32, `(depth, width)`, for Candle.
    Rounded(Tensor),
}

impl Bf16Matrix {
    /// Rounds `w` (`(depth, width)`, f32) for products with AMX tiles if the
    /// CPU has them and this process can use them, else with AVX-512 BF16 if
    /// the CPU has it, else with Candle on `w`'s device. The bf16 kernels run
    /// on the CPU and need a width divisible by 16 (a tile's columns).
    pub fn new(w: &Tensor) -> Result<Self> {
        let fits = w.device().is_cpu() && w.dim(1)? % TILE_ROWS == 0;
        let kernel = [Bf16Kernel::AmxTiles, Bf16Kernel::Avx512Bf16]
            .into_iter()
            .find(|kernel| fits && kernel.available())
            .unwrap_or(Bf16Kernel::Candle);
        Self::with_kernel(w, kernel)
    }

    /// As [`Self::new`], choosing the kernel.
    pub(crate) fn with_kernel(w: &Tensor, kernel: Bf16Kernel) -> Result<Self> {
        let (depth, width) = w.dims2()?;
        let layout = if kernel == Bf16Kernel::Candle {
            let rounded = w
                .to_dtype(candle_core::DType::BF16)?
                .to_dtype(candle_core::DType::F32)?;
            Layout::Rounded(rounded)
        } else {
            if !kernel.available() {
                candle_core::bail!(
                    "this CPU or process cannot run the {} kernel",
                    kernel.name()
                )
            }
            if width % TILE_ROWS != 0 {
                candle_core::bail!(
                    "a bf16 product on the CPU needs a width divisible by 16, not {width}"
                )
            }
            Layout::Pairs {
                kernel,
                values: std::sync::Arc::new(pack_tiles(&w.to_vec2::<f32>()?, width)),
            }
        };
        Ok(Self {
            depth,
            width,
            layout,
        })
    }

    /// The code its products run on.
    pub fn kernel(&self) -> Bf16Kernel {
        match self.layout {
            Layout::Pairs { kernel, .. } => kernel,
            Layout::Rounded(_) => Bf16Kernel::Candle,
        }
    }

    /// `[parts side by side] @ W`, `(rows, width)` f32, each part `(rows, d_i)`
    /// f32 with the d_i summing to the matrix's depth. Side by side rather
    /// than one input so that a layer's input and state need no copy into one
    /// tensor first.
    /// Inputs of another float type are read as f32; the product is f32.
    pub fn product(&self, parts: &[&Tensor]) -> Result<Tensor> {
        let rows = parts.first().map_or(Ok(0), |p| p.dim(0))?;
        let depth: usize = parts.iter().map(|p| p.dim(1)).sum::<Result<usize>>()?;
        if depth != self.depth {
            candle_core::bail!(
                "a product with a bf16 matrix of depth {} was given inputs {depth} wide",
                self.depth
            )
        }
        match &self.layout {
            Layout::Rounded(rounded) => {
                let joined = Tensor::cat(parts, 1)?.to_dtype(candle_core::DType::F32)?;
                let joined = joined
                    .to_dtype(candle_core::DType::BF16)?
                    .to_dtype(candle_core::DType::F32)?;
                joined.matmul(rounded)
            }
            Layout::Pairs { kernel, values } => {
                let input = tile_rows(parts, rows, self.depth)?;
                let out = match kernel {
                    Bf16Kernel::AmxTiles => {
                        amx::product(&input, values, rows, self.depth, self.width)
                    }
                    Bf16Kernel::Avx512Bf16 => {
                        avx512::product(&input, values, rows, self.depth, self.width)
                    }
                    Bf16Kernel::Candle => unreachable!("Candle multiplies the rounded f32 values"),
                };
                Tensor::from_vec(out, (rows, self.width), &Device::Cpu)
            }
        }
    }
}

fn padded_depth(depth: usize) -> usize {
    depth.div_ceil(TILE_DEPTH) * TILE_DEPTH
}

/// The rows of the parts side by side, rounded to bf16, as a `(rows padded to a
/// multiple of 64, depth padded to a multiple of 32)` row-major matrix.
fn tile_rows(parts: &[&Tensor], rows: usize, depth: usize) -> Result<Vec<bf16>> {
    let stride = padded_depth(depth);
    let mut out = vec![bf16::ZERO; rows.div_ceil(PASS_ROWS) * PASS_ROWS * stride];
    let mut column = 0;
    for part in parts {
        let values = part
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let width = part.dim(1)?;
        for row in 0..rows {
            let to = &mut out[row * stride + column..][..width];
            for (to, &from) in to.iter_mut().zip(&values[row * width..][..width]) {
                *to = bf16::from_f32(from);
            }
        }
        column += width;
    }
    Ok(out)
}

/// `w` (`depth` rows of `width`) in [`Layout::Pairs`].
fn pack_tiles(w: &[Vec<f32>], width: usize) -> Vec<bf16> {
    let depth_blocks = padded_depth(w.len()) / TILE_DEPTH;
    let mut out = Vec::with_capacity(width / TILE_ROWS * depth_blocks * TILE_ROWS * TILE_DEPTH);
    let at = |d: usize, column: usize| {
        w.get(d)
            .map_or(bf16::ZERO, |row| bf16::from_f32(row[column]))
    };
    for column_block in 0..width / TILE_ROWS {
        for depth_block in 0..depth_blocks {
            for pair in 0..TILE_DEPTH / 2 {
                for column in column_block * TILE_ROWS..(column_block + 1) * TILE_ROWS {
                    let d = depth_block * TILE_DEPTH + 2 * pair;
                    out.push(at(d, column));
                    out.push(at(d + 1, column));
                }
            }
        }
    }
    out
}

/// Shares the column blocks of 16 of a `width` wide product among rayon's
/// threads: `work` gets each thread's blocks and `out`'s start, and must write
/// only those blocks' columns.
#[cfg(target_arch = "x86_64")]
fn share_column_blocks(
    width: usize,
    out: &mut [f32],
    work: impl Fn(std::ops::Range<usize>, *mut f32) + Sync,
) {
    use rayon::prelude::*;
    let column_blocks = width / TILE_ROWS;
    let threads = rayon::current_num_threads().clamp(1, column_blocks.max(1));
    let share = column_blocks.div_ceil(threads);
    // An address, not a pointer, so that the threads can share it.
    let out_address = out.as_mut_ptr() as usize;
    (0..threads).into_par_iter().for_each(|thread| {
        let blocks = thread * share..((thread + 1) * share).min(column_blocks);
        work(blocks, out_address as *mut f32);
    });
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod amx {
    //! The tile kernel. Linux gives a process the tile registers only when
    //! asked (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`).

    use std::arch::asm;
    use std::sync::OnceLock;

    use super::{PASS_ROWS, TILE_DEPTH, TILE_ROWS, padded_depth, share_column_blocks};
    use half::bf16;

    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    const SYS_ARCH_PRCTL: i64 = 158;

    /// Whether the CPU has AMX with bf16 and the kernel has let this process
    /// use it (asked once), unless `ESAC_MELODY_NO_AMX` is set.
    pub fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            if std::env::var_os("ESAC_MELODY_NO_AMX").is_some() {
                return false;
            }
            // CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
            let leaf = std::arch::x86_64::__cpuid_count(7, 0);
            let has_amx = leaf.edx & (1 << 22) != 0 && leaf.edx & (1 << 24) != 0;
            has_amx && request_tiles() == 0
        })
    }

    fn request_tiles() -> i64 {
        let result: i64;
        // SAFETY: arch_prctl only changes this process's permission to use
        // the tile state; it reads no memory.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => result,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        result
    }

    /// Palette 1, eight tiles of 16 rows of 64 bytes.
    #[repr(C, align(64))]
    struct TileConfig([u8; 64]);

    static CONFIG: TileConfig = {
        let mut bytes = [0u8; 64];
        bytes[0] = 1;
        let mut tile = 0;
        while tile < 8 {
            bytes[16 + 2 * tile] = 64;
            bytes[48 + tile] = TILE_ROWS as u8;
            tile += 1;
        }
        TileConfig(bytes)
    };

    /// `input @ W` for the first `rows` rows of `input` (bf16, rows padded to
    /// a multiple of 64, `padded_depth(depth)` wide), W in tiles: `(rows,
    /// width)` f32. The column blocks are shared out among the threads.
    pub fn product(
        input: &[bf16],
        tiles: &[bf16],
        rows: usize,
        depth: usize,
        width: usize,
    ) -> Vec<f32> {
        let stride = padded_depth(depth);
        let padded_rows = rows.div_ceil(PASS_ROWS) * PASS_ROWS;
        let mut out = vec![0f32; padded_rows * width];
        share_column_blocks(width, &mut out, |blocks, out| {
            // SAFETY: `available()` was true to build tiles; each thread
            // writes only its own column blocks of `out`; every read is
            // within `input` and `tiles` as sized above.
            unsafe { columns(input, tiles, out, rows, stride, width, blocks) }
        });
        out.truncate(rows * width);
        out
    }

    /// The products for the column blocks `blocks`, every row.
    unsafe fn columns(
        input: &[bf16],
        tiles: &[bf16],
        out: *mut f32,
        rows: usize,
        stride: usize,
        width: usize,
        blocks: std::ops::Range<usize>,
    ) {
        let depth_blocks = stride / TILE_DEPTH;
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack));
            for first_row in (0..rows).step_by(PASS_ROWS) {
                let row_blocks = (rows - first_row).div_ceil(TILE_ROWS).min(4);
                let input = input.as_ptr().add(first_row * stride);
                let out = out.add(first_row * width);
                for block in blocks.clone() {
                    let weights = tiles
                        .as_ptr()
                        .add(block * depth_blocks * TILE_ROWS * TILE_DEPTH);
                    let out = out.add(block * TILE_ROWS);
                    match row_blocks {
                        1 => pass::<1>(input, weights, out, stride, width, depth_blocks),
                        2 => pass::<2>(input, weights, out, stride, width, depth_blocks),
                        3 => pass::<3>(input, weights, out, stride, width, depth_blocks),
                        _ => pass::<4>(input, weights, out, stride, width, depth_blocks),
                    }
                }
            }
            asm!("tilerelease", options(nostack));
        }
    }

    /// One column block of 16 for `R` row blocks of 16: accumulators in tiles
    /// 0..R, the weights' block in tile 4, the input's in tiles 5 and 6 in
    /// turn. Each asm block leaves the tiles for the next (Rust allocates none).
    #[inline(always)]
    unsafe fn pass<const R: usize>(
        input: *const bf16,
        weights: *const bf16,
        out: *mut f32,
        stride: usize,
        width: usize,
        depth_blocks: usize,
    ) {
        let input_stride = stride * 2;
        let row_block = TILE_ROWS * stride;
        unsafe {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack)
            );
            for depth_block in 0..depth_blocks {
                let a = input.add(depth_block * TILE_DEPTH);
                asm!(
                    "tileloadd tmm4, [{w} + {s}*1]",
                    "tileloadd tmm5, [{a} + {t}*1]",
                    "tdpbf16ps tmm0, tmm5, tmm4",
                    w = in(reg) weights.add(depth_block * TILE_ROWS * TILE_DEPTH),
                    s = in(reg) 64usize,
                    a = in(reg) a,
                    t = in(reg) input_stride,
                    options(nostack),
                );
                if R > 1 {
                    asm!("tileloadd tmm6, [{a} + {t}*1]", "tdpbf16ps tmm1, tmm6, tmm4",
                        a = in(reg) a.add(row_block), t = in(reg) input_stride, options(nostack));
                }
                if R > 2 {
                    asm!("tileloadd tmm5, [{a} + {t}*1]", "tdpbf16ps tmm2, tmm5, tmm4",
                        a = in(reg) a.add(2 * row_block), t = in(reg) input_stride, options(nostack));
                }
                if R > 3 {
                    asm!("tileloadd tmm6, [{a} + {t}*1]", "tdpbf16ps tmm3, tmm6, tmm4",
                        a = in(reg) a.add(3 * row_block), t = in(reg) input_stride, options(nostack));
                }
            }
            let out_stride = width * 4;
            let out_block = TILE_ROWS * width;
            asm!("tilestored [{c} + {s}*1], tmm0", c = in(reg) out, s = in(reg) out_stride, options(nostack));
            if R > 1 {
                asm!("tilestored [{c} + {s}*1], tmm1", c = in(reg) out.add(out_block), s = in(reg) out_stride, options(nostack));
            }
            if R > 2 {
                asm!("tilestored [{c} + {s}*1], tmm2", c = in(reg) out.add(2 * out_block), s = in(reg) out_stride, options(nostack));
            }
            if R > 3 {
                asm!("tilestored [{c} + {s}*1], tmm3", c = in(reg) out.add(3 * out_block), s = in(reg) out_stride, options(nostack));
            }
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod amx {
    use half::bf16;

    pub fn available() -> bool {
        false
    }

    pub fn product(_: &[bf16], _: &[bf16], _: usize, _: usize, _: usize) -> Vec<f32> {
        unreachable!("tiles are only laid out where AMX is available")
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! The AVX-512 BF16 kernel: each output row's sixteen columns of a block
    //! sum the row's bf16 pairs, one `VDPBF16PS` a pair, in depth order.
    //! Registers hold `ROWS` rows by `COLUMN_BLOCKS` blocks of sums; each
    //! group of column blocks goes through every row before the next, so its
    //! weights are read from the cache, not memory, for all but the first.

    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    use super::{TILE_DEPTH, TILE_ROWS, padded_depth, share_column_blocks};
    use half::bf16;

    /// Rows and column blocks of sums kept in registers: 6 x 4 sums, 4
    /// weights and a broadcast input pair take 29 of the 32 registers.
    const ROWS: usize = 6;
    const COLUMN_BLOCKS: usize = 4;

    /// Whether the CPU has AVX-512 BF16, unless `ESAC_MELODY_NO_AVX512_BF16`
    /// is set.
    pub fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::env::var_os("ESAC_MELODY_NO_AVX512_BF16").is_none()
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bf16")
        })
    }

    /// `input @ W` for the first `rows` rows of `input` (bf16,
    /// `padded_depth(depth)` wide), W in pairs: `(rows, width)` f32. The
    /// column blocks are shared out among the threads.
    pub fn product(
        input: &[bf16],
        pairs: &[bf16],
        rows: usize,
        depth: usize,
        width: usize,
    ) -> Vec<f32> {
        assert!(
            available(),
            "pairs are laid out for AVX-512 only where the CPU has it"
        );
        let stride = padded_depth(depth);
        assert!(input.len() >= rows * stride && pairs.len() >= stride * width);
        let mut out = vec![0f32; rows * width];
        share_column_blocks(width, &mut out, |blocks, out| {
            // SAFETY: `available()` holds; each thread writes only its own
            // column blocks of `out`; every read is within `input` and
            // `pairs` as checked above.
            unsafe {
                columns(
                    input.as_ptr(),
                    pairs.as_ptr(),
                    out,
                    rows,
                    stride,
                    width,
                    blocks,
                )
            }
        });
        out
    }

    /// The products for the column blocks `blocks`, every row.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn columns(
        input: *const bf16,
        pairs: *const bf16,
        out: *mut f32,
        rows: usize,
        stride: usize,
        width: usize,
        blocks: std::ops::Range<usize>,
    ) {
        // Values of one column block: every pair of depth, 16 columns x 2.
        let block_values = stride / TILE_DEPTH * TILE_ROWS * TILE_DEPTH;
        let mut block = blocks.start;
        while block < blocks.end {
            let group = (blocks.end - block).min(COLUMN_BLOCKS);
            let mut first_row = 0;
            while first_row < rows {
                let count = (rows - first_row).min(ROWS);
                let at = Block {
                    input: unsafe { input.add(first_row * stride) },
                    stride,
                    pairs: unsafe { pairs.add(block * block_values) },
                    block_values,
                    out: unsafe { out.add(first_row * width + block * TILE_ROWS) },
                    width,
                };
                // SAFETY: `count` rows and `group` column blocks from here are
                // within the operands, as `product` checked.
                unsafe {
                    match (count, group) {
                        (6, 4) => sums::<6, 4>(&at),
                        (5, 4) => sums::<5, 4>(&at),
                        (4, 4) => sums::<4, 4>(&at),
                        (3, 4) => sums::<3, 4>(&at),
                        (2, 4) => sums::<2, 4>(&at),
                        (1, 4) => sums::<1, 4>(&at),
                        (count, _) => {
                            for offset in 0..group {
                                let at = at.column_block(offset);
                                match count {
                                    6 => sums::<6, 1>(&at),
                                    5 => sums::<5, 1>(&at),
                                    4 => sums::<4, 1>(&at),
                                    3 => sums::<3, 1>(&at),
                                    2 => sums::<2, 1>(&at),
                                    _ => sums::<1, 1>(&at),
                                }
                            }
                        }
                    }
                }
                first_row += count;
            }
            block += group;
        }
    }

    /// Where a group of rows and column blocks begins in each operand.
    struct Block {
        input: *const bf16,
        stride: usize,
        pairs: *const bf16,
        block_values: usize,
        out: *mut f32,
        width: usize,
    }

    impl Block {
        fn column_block(&self, offset: usize) -> Block {
            Block {
                pairs: self.pairs.wrapping_add(offset * self.block_values),
                out: self.out.wrapping_add(offset * TILE_ROWS),
                ..*self
            }
        }
    }

    /// 512 bits read as 32 bf16 values.
    #[inline]
    fn as_pairs(bits: __m512i) -> __m512bh {
        // SAFETY: both are 512 bits of plain data, any bit pattern valid.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(bits) }
    }

    /// `R` rows by `C` column blocks: each sum starts at 0 and adds the
    /// row's pairs in depth order, whatever `R` and `C` are.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn sums<const R: usize, const C: usize>(at: &Block) {
        let mut sums = [[_mm512_setzero_ps(); C]; R];
        for pair in 0..at.stride / 2 {
            let mut weights = [_mm512_setzero_si512(); C];
            for (column, weight) in weights.iter_mut().enumerate() {
                // SAFETY: within the column block's pairs (see `columns`).
                *weight = unsafe {
                    _mm512_loadu_si512(
                        at.pairs
                            .add(column * at.block_values + pair * 2 * TILE_ROWS)
                            .cast(),
                    )
                };
            }
            for (row, row_sums) in sums.iter_mut().enumerate() {
                // SAFETY: the row's pair is within `input`.
                let pair_bits = unsafe {
                    at.input
                        .add(row * at.stride + 2 * pair)
                        .cast::<i32>()
                        .read_unaligned()
                };
                let pair_values = as_pairs(_mm512_set1_epi32(pair_bits));
                for (sum, weight) in row_sums.iter_mut().zip(&weights) {
                    *sum = _mm512_dpbf16_ps(*sum, pair_values, as_pairs(*weight));
                }
            }
        }
        for (row, row_sums) in sums.iter().enumerate() {
            for (column, sum) in row_sums.iter().enumerate() {
                // SAFETY: the row's 16 columns of this block are within `out`.
                unsafe { _mm512_storeu_ps(at.out.add(row * at.width + column * TILE_ROWS), *sum) };
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx512 {
    use half::bf16;

    pub fn available() -> bool {
        false
    }

    pub fn product(_: &[bf16], _: &[bf16], _: usize, _: usize, _: usize) -> Vec<f32> {
        unreachable!("pairs are laid out for AVX-512 only where the CPU has it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(rows: usize, columns: usize, seed: u64) -> Tensor {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let values: Vec<f32> = (0..rows * columns)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        Tensor::from_vec(values, (rows, columns), &Device::Cpu).unwrap()
    }

    fn rounded(t: &Tensor) -> Vec<Vec<f64>> {
        t.to_vec2::<f32>()
            .unwrap()
            .iter()
            .map(|row| row.iter().map(|&v| bf16::from_f32(v).to_f64()).collect())
            .collect()
    }

    /// A matrix for each kernel this CPU runs; the others are named as not tested.
    fn layouts(w: &Tensor) -> Vec<Bf16Matrix> {
        let mut found = Vec::new();
        for kernel in [
            Bf16Kernel::Candle,
            Bf16Kernel::AmxTiles,
            Bf16Kernel::Avx512Bf16,
        ] {
            if kernel.available() {
                found.push(Bf16Matrix::with_kernel(w, kernel).unwrap());
            } else {
                eprintln!(
                    "the {} kernel is not tested: this CPU or OS cannot run it",
                    kernel.name()
                );
            }
        }
        found
    }

    /// Against the exact sums (f64) of the bf16-rounded operands, within the
    /// error of summing `depth` terms in f32. The rows cover a partial tile, a
    /// partial pass of four tiles and a second pass (and for AVX-512, groups of
    /// six rows and what is left); the depth, two inputs side by side that are
    /// not a multiple of 32; the widths, groups of four column blocks of 16 and
    /// fewer.
    #[test]
    fn products_are_the_sums_of_the_rounded_operands() {
        for (first, second, width, rows) in [
            (49, 64, 48, 1),
            (49, 64, 48, 5),
            (49, 64, 48, 16),
            (49, 64, 48, 58),
            (49, 64, 48, 70),
            (49, 64, 80, 13),
            (49, 64, 144, 58),
            (5, 8, 32, 3),
            (8, 8, 32, 3),
        ] {
            let w = random(first + second, width, 1);
            let exact_w = rounded(&w);
            {
                let (x, h) = (random(rows, first, 2), random(rows, second, 3));
                let inputs: Vec<Vec<f64>> = rounded(&x)
                    .into_iter()
                    .zip(rounded(&h))
                    .map(|(x, h)| x.into_iter().chain(h).collect())
                    .collect();
                for matrix in layouts(&w) {
                    let found = matrix.product(&[&x, &h]).unwrap().to_vec2::<f32>().unwrap();
                    for (row, input) in inputs.iter().enumerate() {
                        for column in 0..width {
                            let terms = input.iter().zip(&exact_w).map(|(a, w)| a * w[column]);
                            let exact: f64 = terms.clone().sum();
                            let scale: f64 = terms.map(f64::abs).sum();
                            let error = (found[row][column] as f64 - exact).abs();
                            let bound = (first + second) as f64 * f32::EPSILON as f64 * scale;
                            assert!(
                                error <= bound,
                                "{}, {rows} rows: [{row}][{column}] is {} not {exact} (bound {bound})",
                                matrix.kernel().name(),
                                found[row][column]
                            );
                        }
                    }
                }
            }
        }
    }

    /// Each row's products depend on that row alone, to the bit: a melody is
    /// the same alone or batched.
    #[test]
    fn a_row_is_the_same_alone_or_in_a_batch() {
        let w = random(100, 64, 4);
        let batch = random(70, 100, 5);
        for matrix in layouts(&w) {
            let together = matrix.product(&[&batch]).unwrap().to_vec2::<f32>().unwrap();
            for row in [0, 17, 63, 64, 69] {
                let alone = matrix
                    .product(&[&batch.narrow(0, row, 1).unwrap()])
                    .unwrap()
                    .to_vec2::<f32>()
                    .unwrap();
                assert_eq!(
                    alone[0],
                    together[row],
                    "{}, row {row}",
                    matrix.kernel().name()
                );
            }
        }
    }

    #[test]
    fn a_depth_other_than_the_matrix_is_refused() {
        let matrix = Bf16Matrix::new(&random(10, 16, 6)).unwrap();
        let error = matrix.product(&[&random(2, 9, 7)]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("depth 10 was given inputs 9 wide"),
            "{error}"
        );
    }
}
