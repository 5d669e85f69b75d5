//! The first layer's input projections of a model with side inputs, as one
//! Candle custom op on the CPU. The token and each side input are embedding
//! lookups summed, and the projection is linear, so each input's embedding is
//! projected once into a per-value table (a few hundred rows in all) and a
//! position's projection is the sum of one row of each table. Summing the
//! embeddings first and projecting every position (the way CUDA runs) costs a
//! `(positions x embedding) @ (embedding x 4 hidden)` product forward and two
//! backward: on the CPU, half of what side inputs cost a training step at
//! hidden 128. Here each way is one pass of additions over the positions. As
//! Candle operations the lookups and sums would be a dozen nodes over
//! `(positions, 4 * hidden)`, each with a zero-filled gradient buffer.
//!
//! Input: the tables stacked `(rows, width)`. Which row of each table every
//! position reads belongs to the op. Output `(positions, width)`.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, bail};

use crate::fused::{Real, compiled_per_cpu, contiguous, cpu_values};

/// The op: for every position, the stacked table's row of each input.
pub(crate) struct SummedLookup {
    /// `positions x inputs` row numbers into the stacked tables, position-major.
    rows: Vec<u32>,
    inputs: usize,
    /// Sequences the positions interleave (time-major, so position `t * batch
    /// + s` is step `t` of sequence `s`).
    batch: usize,
    /// Rows of the stacked tables, all inputs together.
    table_rows: usize,
}

impl SummedLookup {
    /// `inputs`: each input's value at every position (the same number for all)
    /// and how many values its table has; the tables are stacked in this order.
    pub fn new(inputs: &[(Vec<u32>, usize)], batch: usize) -> Result<Self> {
        let Some((first, _)) = inputs.first() else {
            bail!("summed lookup: no inputs");
        };
        let positions = first.len();
        if batch == 0 || positions % batch != 0 {
            bail!("summed lookup: {positions} positions do not make {batch} sequences");
        }
        let mut rows = vec![0; positions * inputs.len()];
        let mut offset = 0;
        for (column, (values, size)) in inputs.iter().enumerate() {
            if values.len() != positions {
                bail!(
                    "summed lookup: input {column} has {} positions, input 0 has {positions}",
                    values.len()
                );
            }
            if let Some(&value) = values.iter().find(|&&v| v as usize >= *size) {
                bail!(
                    "summed lookup: input {column} has {size} values; {value} is not one of them"
                );
            }
            for (row, &value) in rows
                .iter_mut()
                .skip(column)
                .step_by(inputs.len())
                .zip(values)
            {
                *row = value + offset as u32;
            }
            offset += size;
        }
        Ok(Self {
            rows,
            inputs: inputs.len(),
            batch,
            table_rows: offset,
        })
    }

    fn width(&self, tables: &Shape) -> Result<usize> {
        let (rows, width) = tables.dims2()?;
        if rows != self.table_rows {
            bail!(
                "summed lookup: the stacked tables have {rows} rows, the inputs {}",
                self.table_rows
            );
        }
        Ok(width)
    }

    fn gradient<R: Real>(&self, tables: &Tensor, grad: &Tensor) -> Result<Tensor> {
        let width = self.width(tables.shape())?;
        let grad = grad.contiguous()?;
        let guard = grad.storage_and_layout();
        let grad = cpu_values::<R, _>(&guard, "the sums' gradient")?;
        if grad.len() != self.rows.len() / self.inputs * width {
            bail!("summed lookup: the gradient has {} values", grad.len());
        }
        let d_tables = scatter_sums(grad, &self.rows, self.inputs, self.batch, self.table_rows);
        drop(guard);
        Tensor::from_vec(d_tables, tables.shape(), tables.device())
    }
}

compiled_per_cpu! {
    /// Each position's sum of the `inputs` rows of `tables` it reads.
    fn gather_sums => gather_sums_portable(tables: &[R], rows: &[u32], inputs: usize, width: usize) -> Vec<R>
}

#[inline(always)]
fn gather_sums_portable<R: Real>(
    tables: &[R],
    rows: &[u32],
    inputs: usize,
    width: usize,
) -> Vec<R> {
    let table_row = |row: u32| &tables[row as usize * width..][..width];
    // The first row copied, not added to zeros: the sums are megabytes, and
    // zeroing them first is one more pass over memory.
    let mut sums = Vec::with_capacity(rows.len() / inputs * width);
    for rows in rows.chunks_exact(inputs) {
        let start = sums.len();
        sums.extend_from_slice(table_row(rows[0]));
        for &row in &rows[1..] {
            for (total, &value) in sums[start..].iter_mut().zip(table_row(row)) {
                *total += value;
            }
        }
    }
    sums
}

compiled_per_cpu! {
    /// The tables' gradient: each position's gradient added to every row it read.
    fn scatter_sums => scatter_sums_portable(grad: &[R], rows: &[u32], inputs: usize, batch: usize, table_rows: usize) -> Vec<R>
}

#[inline(always)]
fn scatter_sums_portable<R: Real>(
    grad: &[R],
    rows: &[u32],
    inputs: usize,
    batch: usize,
    table_rows: usize,
) -> Vec<R> {
    let positions = rows.len() / inputs;
    let width = grad.len() / positions.max(1);
    let mut d_tables = vec![R::default(); table_rows * width];
    // Each sequence in turn: its side values repeat from step to step, so the
    // rows they add into stay in L1 rather than being fetched again.
    for sequence in 0..batch {
        for position in (sequence..positions).step_by(batch) {
            let d_sum = &grad[position * width..][..width];
            for &row in &rows[position * inputs..][..inputs] {
                let start = row as usize * width;
                for (total, &d) in d_tables[start..start + width].iter_mut().zip(d_sum) {
                    *total += d;
                }
            }
        }
    }
    d_tables
}

impl CustomOp1 for SummedLookup {
    fn name(&self) -> &'static str {
        "summed-lookup"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let width = self.width(layout.shape())?;
        let positions = self.rows.len() / self.inputs;
        let sums = match storage {
            CpuStorage::F32(_) => f32::storage(gather_sums(
                contiguous::<f32>(storage, layout, "the tables")?,
                &self.rows,
                self.inputs,
                width,
            )),
            CpuStorage::F64(_) => f64::storage(gather_sums(
                contiguous::<f64>(storage, layout, "the tables")?,
                &self.rows,
                self.inputs,
                width,
            )),
            _ => bail!("summed lookup: only f32 and f64"),
        };
        Ok((sums, Shape::from((positions, width))))
    }

    fn bwd(&self, tables: &Tensor, _sums: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        match tables.dtype() {
            candle_core::DType::F32 => self.gradient::<f32>(tables, grad).map(Some),
            candle_core::DType::F64 => self.gradient::<f64>(tables, grad).map(Some),
            other => bail!("summed lookup: no backward for {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SummedLookup;
    use candle_core::{Device, Tensor, Var};

    /// Two inputs (of 2 and 3 values) at four positions, two sequences of two
    /// steps: the sums and the tables' gradient worked by hand.
    #[test]
    fn sums_and_gradient_match_a_hand_worked_example() {
        let tables = Var::from_slice(
            &[
                1., 2., 10., 20., // input 0
                100., 200., 1000., 2000., 10000., 20000., // input 1
            ],
            (5, 2),
            &Device::Cpu,
        )
        .unwrap();
        let op = SummedLookup::new(&[(vec![0, 1, 1, 0], 2), (vec![2, 0, 2, 1], 3)], 2).unwrap();
        let sums = tables.apply_op1(op).unwrap();
        assert_eq!(
            sums.to_vec2::<f64>().unwrap(),
            [
                [10001., 20002.],
                [110., 220.],
                [10010., 20020.],
                [1001., 2002.]
            ]
        );
        let weights = Tensor::new(&[[1., 0.], [0., 1.], [2., 0.], [0., 3.]], &Device::Cpu).unwrap();
        let grads = (sums * weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(
            grads.get(&tables).unwrap().to_vec2::<f64>().unwrap(),
            [[1., 3.], [2., 1.], [0., 1.], [0., 3.], [3., 0.]]
        );
    }

    /// The message alone, without the backtrace Candle adds to it where
    /// `RUST_BACKTRACE` asks for one.
    fn message(error: candle_core::Error) -> String {
        error.to_string().lines().next().unwrap().to_owned()
    }

    #[test]
    fn bad_inputs_are_refused() {
        let error = |inputs: &[(Vec<u32>, usize)], batch| {
            message(SummedLookup::new(inputs, batch).err().unwrap())
        };
        assert_eq!(
            error(&[(vec![0, 1], 2), (vec![3, 0], 3)], 1),
            "summed lookup: input 1 has 3 values; 3 is not one of them"
        );
        assert_eq!(
            error(&[(vec![0, 1], 2), (vec![0], 3)], 1),
            "summed lookup: input 1 has 1 positions, input 0 has 2"
        );
        assert_eq!(
            error(&[(vec![0, 1, 0], 2)], 2),
            "summed lookup: 3 positions do not make 2 sequences"
        );
        let tables = Tensor::zeros((4, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let op = SummedLookup::new(&[(vec![0, 1], 2)], 1).unwrap();
        assert_eq!(
            message(tables.apply_op1(op).unwrap_err()),
            "summed lookup: the stacked tables have 4 rows, the inputs 2"
        );
    }
}
