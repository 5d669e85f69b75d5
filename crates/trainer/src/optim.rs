//! Adam with decoupled weight decay, global-norm gradient clipping, and the
//! learning-rate schedule. Written here rather than taken from candle-nn because
//! its `AdamW` keeps its moments private, and `--resume` must save them.

use std::collections::HashMap;

use candle_core::{Result, Tensor, Var, backprop::GradStore};
use serde::{Deserialize, Serialize};

/// How the learning rate moves over training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    Constant,
    /// Linear warm-up, then a cosine decay to `min_ratio` of the peak at the last step.
    Cosine {
        min_ratio: f64,
    },
}

/// Learning rate at `step` (0-based) of `total`.
pub fn learning_rate(
    peak: f64,
    schedule: Schedule,
    warmup: usize,
    step: usize,
    total: usize,
) -> f64 {
    if warmup > 0 && step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    match schedule {
        Schedule::Constant => peak,
        Schedule::Cosine { min_ratio } => {
            let span = total.saturating_sub(warmup).max(1) as f64;
            let progress = ((step - warmup.min(step)) as f64 / span).min(1.0);
            let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
            peak * (min_ratio + (1.0 - min_ratio) * cosine)
        }
    }
}

/// Adam's settings (PyTorch's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 is plain Adam.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Adam over named variables; moments are kept by name so they can be saved.
pub struct Adam {
    pub config: AdamConfig,
    params: Vec<(String, Var)>,
    /// First and second moments by parameter name.
    pub moments: HashMap<String, (Tensor, Tensor)>,
    /// Updates taken so far.
    pub steps: u64,
}

impl Adam {
    pub fn new(params: Vec<(String, Var)>, config: AdamConfig) -> Result<Self> {
        let mut moments = HashMap::new();
        for (name, var) in &params {
            let zeros = var.as_tensor().zeros_like()?;
            moments.insert(name.clone(), (zeros.clone(), zeros));
        }
        Ok(Self {
            config,
            params,
            moments,
            steps: 0,
        })
    }

    /// Global L2 norm of the gradients.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut total = 0f64;
        for (_, var) in &self.params {
            if let Some(grad) = grads.get(var.as_tensor()) {
                total += grad
                    .sqr()?
                    .sum_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()?;
            }
        }
        Ok(total.sqrt())
    }

    /// One update at learning rate `lr`; gradients are scaled by `grad_scale`
    /// (clipping) first.
    pub fn step(&mut self, grads: &GradStore, lr: f64, grad_scale: f64) -> Result<()> {
        self.steps += 1;
        let AdamConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.config;
        let t = self.steps as i32;
        let correction1 = 1.0 - beta1.powi(t);
        let correction2 = 1.0 - beta2.powi(t);
        for (name, var) in &self.params {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let grad = grad.detach().affine(grad_scale, 0.0)?;
            let (m, v) = self
                .moments
                .get_mut(name)
                .expect("moments exist for every parameter");
            let new_m = ((m.affine(beta1, 0.0))? + grad.affine(1.0 - beta1, 0.0)?)?;
            let new_v = ((v.affine(beta2, 0.0))? + grad.sqr()?.affine(1.0 - beta2, 0.0)?)?;
            let update = new_m
                .affine(1.0 / correction1, 0.0)?
                .div(&(new_v.affine(1.0 / correction2, 0.0)?.sqrt()? + eps)?)?;
            let mut value = var.as_tensor().detach();
            if weight_decay > 0.0 {
                value = value.affine(1.0 - lr * weight_decay, 0.0)?;
            }
            var.set(&(value - update.affine(lr, 0.0)?)?)?;
            *m = new_m;
            *v = new_v;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn schedule_warms_up_and_decays() {
        let cosine = Schedule::Cosine { min_ratio: 0.1 };
        assert_eq!(learning_rate(1.0, Schedule::Constant, 0, 5, 10), 1.0);
        assert_eq!(learning_rate(1.0, cosine, 4, 0, 104), 0.25);
        assert_eq!(learning_rate(1.0, cosine, 4, 4, 104), 1.0);
        assert!((learning_rate(1.0, cosine, 4, 104, 104) - 0.1).abs() < 1e-12);
        assert!((learning_rate(1.0, cosine, 4, 54, 104) - 0.55).abs() < 1e-12);
    }

    #[test]
    fn adam_matches_a_hand_computed_step() {
        // x = 1, loss = x^2 / 2, grad = 1: Adam's first step moves by exactly lr.
        let x = Var::new(&[1.0f64], &Device::Cpu).unwrap();
        let mut adam = Adam::new(vec![("x".into(), x.clone())], AdamConfig::default()).unwrap();
        let loss = x
            .as_tensor()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .affine(0.5, 0.0)
            .unwrap();
        let grads = loss.backward().unwrap();
        assert_eq!(adam.grad_norm(&grads).unwrap(), 1.0);
        adam.step(&grads, 0.1, 1.0).unwrap();
        let value = x.as_tensor().to_vec1::<f64>().unwrap()[0];
        assert!((value - 0.9).abs() < 1e-7, "{value}");
        let (m, v) = &adam.moments["x"];
        assert!((m.to_vec1::<f64>().unwrap()[0] - 0.1).abs() < 1e-12);
        assert!((v.to_vec1::<f64>().unwrap()[0] - 0.001).abs() < 1e-12);
        assert_eq!(x.as_tensor().dtype(), DType::F64);
    }
}
