//! The training objective's last stage as one Candle custom op on the CPU:
//! dropout on the top layer's outputs, the output layer, log-softmax and the
//! masked negative log-likelihood, with a hand-written backward pass. In Candle
//! operations these are a dozen graph nodes over `(tokens, vocab)` and
//! `(tokens, hidden)` tensors, each with its own buffers and a zero-filled
//! gradient accumulator; together they cost more than the recurrence. Here the
//! forward pass is one matrix product and one pass over the rows, and the
//! backward pass two matrix products and one pass.
//!
//! Inputs: the top layer's h `(time, batch, hidden)` (time-major, as the
//! recurrence writes it), `fc.weight` `(vocab, hidden)` and `fc.bias` `(vocab,)`.
//! The targets, their weights and the dropout factors, in the same time-major
//! order, belong to the op. Output: the summed weighted NLL, a scalar.

use std::borrow::Cow;
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};

use crate::fused::{DenormalsFlushed, Real, contiguous, cpu_values, matmul};

/// The op; one per call, holding its targets and what its forward pass saved.
pub(crate) struct OutputLoss {
    /// Target id of every position, time-major.
    targets: Vec<u32>,
    /// Weight of every position's loss (1 scored, 0 padding).
    weights: Vec<f32>,
    /// Inverted-dropout factor of every input value, or none outside training.
    dropout: Option<Vec<f32>>,
    /// Softmax of every position's logits, from the forward pass.
    probs_f32: Mutex<Option<Vec<f32>>>,
    probs_f64: Mutex<Option<Vec<f64>>>,
}

/// Dimensions (positions, hidden, vocab) of a call.
type Dims = (usize, usize, usize);

impl OutputLoss {
    pub fn new(targets: Vec<u32>, weights: Vec<f32>, dropout: Option<Vec<f32>>) -> Self {
        Self {
            targets,
            weights,
            dropout,
            probs_f32: Mutex::new(None),
            probs_f64: Mutex::new(None),
        }
    }

    fn dims(&self, hs: &Shape, weight: &Shape, bias: &Shape) -> Result<Dims> {
        let (time, batch, hidden) = hs.dims3()?;
        let (vocab, weight_hidden) = weight.dims2()?;
        let positions = time * batch;
        if weight_hidden != hidden
            || bias.dims1()? != vocab
            || self.targets.len() != positions
            || self.weights.len() != positions
            || self
                .dropout
                .as_ref()
                .is_some_and(|mask| mask.len() != positions * hidden)
        {
            bail!(
                "fused output loss: shapes {hs:?}, {weight:?} and {bias:?} do not fit {} targets",
                self.targets.len()
            );
        }
        if let Some(&id) = self.targets.iter().find(|&&id| id as usize >= vocab) {
            bail!("fused output loss: target {id} is outside the vocabulary of {vocab}");
        }
        Ok((positions, hidden, vocab))
    }

    /// The top layer's outputs after dropout.
    fn dropped<'a, R: Real>(&self, hs: &'a [R]) -> Cow<'a, [R]> {
        match &self.dropout {
            Some(mask) => hs
                .iter()
                .zip(mask)
                .map(|(&x, &m)| x * R::from_f64(f64::from(m)))
                .collect(),
            None => Cow::Borrowed(hs),
        }
    }

    /// The loss and the softmax of every position.
    fn forward<R: Real>(
        &self,
        hs: &[R],
        weight: &[R],
        bias: &[R],
        (positions, hidden, vocab): Dims,
    ) -> (R, Vec<R>) {
        let inputs = self.dropped(hs);
        let mut probs = vec![R::default(); positions * vocab];
        matmul(
            (positions, vocab, hidden),
            &mut probs,
            false,
            &inputs,
            (hidden, 1),
            weight,
            (1, hidden),
        );
        let mut loss = R::default();
        for ((row, &target), &weight) in probs
            .chunks_exact_mut(vocab)
            .zip(&self.targets)
            .zip(&self.weights)
        {
            for (logit, &b) in row.iter_mut().zip(bias) {
                *logit += b;
            }
            // A NaN logit makes the loss NaN (the trainer stops on it), so the
            // comparison need not see it.
            let max = row
                .iter()
                .copied()
                .fold(row[0], |m, x| if x > m { x } else { m });
            let shifted_target = row[target as usize] - max;
            let mut sum = R::default();
            for value in row.iter_mut() {
                *value = (*value - max).exp();
                sum += *value;
            }
            let log_prob = shifted_target - sum.ln();
            loss += -(R::from_f64(f64::from(weight)) * log_prob);
            let inverse = sum.recip();
            for value in row.iter_mut() {
                *value *= inverse;
            }
        }
        (loss, probs)
    }

    /// Gradients of h, of the weight and of the bias for a loss gradient `grad`.
    fn backward<R: Real>(
        &self,
        mut probs: Vec<R>,
        hs: &[R],
        weight: &[R],
        grad: R,
        (positions, hidden, vocab): Dims,
    ) -> (Vec<R>, Vec<R>, Vec<R>) {
        // d loss / d logits = weight * (softmax - one-hot(target)), in place.
        for ((row, &target), &w) in probs
            .chunks_exact_mut(vocab)
            .zip(&self.targets)
            .zip(&self.weights)
        {
            let scale = grad * R::from_f64(f64::from(w));
            for value in row.iter_mut() {
                *value *= scale;
            }
            row[target as usize] -= scale;
        }
        let d_logits = probs;
        let mut d_hs = vec![R::default(); positions * hidden];
        matmul(
            (positions, hidden, vocab),
            &mut d_hs,
            false,
            &d_logits,
            (vocab, 1),
            weight,
            (hidden, 1),
        );
        if let Some(mask) = &self.dropout {
            for (d, &m) in d_hs.iter_mut().zip(mask) {
                *d *= R::from_f64(f64::from(m));
            }
        }
        let mut d_weight = vec![R::default(); vocab * hidden];
        matmul(
            (vocab, hidden, positions),
            &mut d_weight,
            false,
            &d_logits,
            (1, vocab),
            &self.dropped(hs),
            (hidden, 1),
        );
        let mut d_bias = vec![R::default(); vocab];
        for row in d_logits.chunks_exact(vocab) {
            for (total, &d) in d_bias.iter_mut().zip(row) {
                *total += d;
            }
        }
        (d_hs, d_weight, d_bias)
    }

    fn run<R: Real>(
        &self,
        saved: &Mutex<Option<Vec<R>>>,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
        (s3, l3): (&CpuStorage, &Layout),
    ) -> Result<(CpuStorage, Shape)> {
        let dims = self.dims(l1.shape(), l2.shape(), l3.shape())?;
        let hs = contiguous::<R>(s1, l1, "the top layer's outputs")?;
        let weight = contiguous::<R>(s2, l2, crate::names::FC_WEIGHT)?;
        let bias = contiguous::<R>(s3, l3, crate::names::FC_BIAS)?;
        let (loss, probs) = self.forward(hs, weight, bias, dims);
        *saved.lock().expect("not poisoned") = Some(probs);
        Ok((R::storage(vec![loss]), Shape::from(())))
    }

    fn gradients<R: Real>(
        &self,
        saved: &Mutex<Option<Vec<R>>>,
        [hs, weight, bias, grad]: [&Tensor; 4],
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [hs, weight, bias] = [hs, weight, bias].map(Tensor::contiguous);
        let (hs, weight, bias) = (hs?, weight?, bias?);
        let dims = self.dims(hs.shape(), weight.shape(), bias.shape())?;
        let grad = grad.to_scalar::<R>()?;
        let guards = [&hs, &weight, &bias].map(|t| t.storage_and_layout());
        let hs_v = cpu_values::<R, _>(&guards[0], "the top layer's outputs")?;
        let weight_v = cpu_values::<R, _>(&guards[1], crate::names::FC_WEIGHT)?;
        let bias_v = cpu_values::<R, _>(&guards[2], crate::names::FC_BIAS)?;
        let probs = match saved.lock().expect("not poisoned").take() {
            Some(probs) => probs,
            // Only if the backward pass runs twice: do the forward pass again.
            None => self.forward(hs_v, weight_v, bias_v, dims).1,
        };
        let (d_hs, d_weight, d_bias) = self.backward(probs, hs_v, weight_v, grad, dims);
        drop(guards);
        let device = hs.device();
        Ok((
            Some(Tensor::from_vec(d_hs, hs.shape(), device)?),
            Some(Tensor::from_vec(d_weight, weight.shape(), device)?),
            Some(Tensor::from_vec(d_bias, bias.shape(), device)?),
        ))
    }
}

impl CustomOp3 for OutputLoss {
    fn name(&self) -> &'static str {
        "output-loss"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _flushed = DenormalsFlushed::new();
        match s1 {
            CpuStorage::F32(_) => self.run(&self.probs_f32, (s1, l1), (s2, l2), (s3, l3)),
            CpuStorage::F64(_) => self.run(&self.probs_f64, (s1, l1), (s2, l2), (s3, l3)),
            _ => bail!("fused output loss: only f32 and f64"),
        }
    }

    fn bwd(
        &self,
        hs: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _loss: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let args = [hs, weight, bias, grad];
        let _flushed = DenormalsFlushed::new();
        match hs.dtype() {
            candle_core::DType::F32 => self.gradients(&self.probs_f32, args),
            candle_core::DType::F64 => self.gradients(&self.probs_f64, args),
            other => bail!("fused output loss: no backward for {other:?}"),
        }
    }
}
