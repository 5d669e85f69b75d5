//! Stateful melody generation from a trained model: temperature, top-k, top-p, guidance, seeded.
//!
//! The primer runs through the model once, then each new
//! token is one step that carries the LSTM state (h, c) of every layer, so a
//! token costs the same however long the melody already is (the reference
//! re-fed the whole growing sequence for every token). Temperature, top-k and
//! top-p sampling from a seeded generator: the same seed gives the same melody.

use candle_core::{D, DType, Tensor};
use grid_codec::{Schedule, Token, Vocabulary};
use lstm_candle::{LstmState, MelodyModel, ModelError, Stepper};
use model_folder::GenerationConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SampleError {
    #[error("temperature {0} must be a positive number")]
    Temperature(f64),
    #[error("top-p {0} must be in (0, 1]")]
    TopP(f64),
    #[error("top-k must be at least 1")]
    TopK,
    #[error("ask for at least one melody")]
    NoMelodies,
    #[error(
        "the primer cannot start with `_`: a hold continues a note, and none has started (begin with a pitch such as 60 or with r)"
    )]
    PrimerStartsWithHold,
    #[error(transparent)]
    Vocabulary(#[from] grid_codec::VocabError),
    #[error(
        "the model has {model} tokens but the tokenizer has {vocabulary}; they do not belong together"
    )]
    Mismatch { model: usize, vocabulary: usize },
    #[error(
        "the model reads {inputs} side input(s), so it needs side values for each of the {rows} melodies; {given} rows were given"
    )]
    SideValues {
        inputs: usize,
        rows: usize,
        given: usize,
    },
    #[error(
        "an echo fills side input {input}, but the melody's schedule has {inputs} side input(s)"
    )]
    EchoInput { input: usize, inputs: usize },
    #[error("a session starts from at least one token (the start token `.`)")]
    EmptyPrefix,
    #[error("a contrast needs a model with side inputs; this one reads none")]
    ContrastWithoutSideInputs,
    #[error("contrast weight {0} must be a finite number, 0 or more")]
    ContrastWeight(f64),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// How to pick each next token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingConfig {
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    /// Tokens to generate at most after the primer.
    pub max_len: usize,
    pub seed: u64,
    /// Never emit `_` before any note or rest has started, and never end (`.`)
    /// a melody that holds no note.
    pub grammar: bool,
}

/// The defaults of a model without a `generation_config.json`.
impl Default for SamplingConfig {
    fn default() -> Self {
        Self::from_generation(&GenerationConfig::default(), 0)
    }
}

impl SamplingConfig {
    /// A model's own defaults (its `generation_config.json`) with a seed.
    pub fn from_generation(generation: &GenerationConfig, seed: u64) -> Self {
        Self {
            temperature: generation.temperature,
            top_k: generation.top_k,
            top_p: generation.top_p,
            max_len: generation.max_length,
            seed,
            grammar: generation.grammar,
        }
    }

    pub fn validate(&self) -> Result<(), SampleError> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(SampleError::Temperature(self.temperature));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(SampleError::TopP(p));
        }
        if self.top_k == Some(0) {
            return Err(SampleError::TopK);
        }
        Ok(())
    }
}

/// Side input values of a batch of melodies, one [`Schedule`] per melody:
/// `values[input][step]`, step 0 being the `.` every melody starts from (a
/// step past the end of an input's values takes its last one), and the
/// inputs that echo the melody's own tokens, filled in as they are drawn.
/// What the values mean is the caller's business. Empty (no rows) for a
/// model without side inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SideValues {
    pub rows: Vec<Schedule>,
}

impl SideValues {
    /// Each input's value for `row` at `step`, given the ids fed to the row
    /// so far (`fed[step]` the one fed at `step`).
    fn at(&self, row: usize, step: usize, fed: &[u32]) -> Vec<u32> {
        let Some(schedule) = self.rows.get(row) else {
            return Vec::new();
        };
        let mut values: Vec<u32> = schedule
            .values
            .iter()
            .map(|values| {
                values
                    .get(step)
                    .or(values.last())
                    .copied()
                    .unwrap_or_default()
            })
            .collect();
        // Step `s` predicts the token of grid step `s` and `fed[k + 1]` is
        // that of grid step `k`, as in training (`fed[0]` is the `.`).
        // `fed[0]` is the `.`, so the melody's tokens are the rest; each
        // echo's input is one of these (checked in `Session::start`).
        let tokens = fed.get(1..).unwrap_or_default();
        for echo in &schedule.echoes {
            values[echo.input] = echo.value(step, tokens);
        }
        values
    }

    /// Per input, a `(rows, 1)` column of the given rows' values at `step`.
    fn column(
        &self,
        rows: &[usize],
        step: usize,
        inputs: usize,
        fed: &[Vec<u32>],
    ) -> Vec<Vec<Vec<u32>>> {
        let mut by_input = vec![Vec::with_capacity(rows.len()); inputs];
        for &row in rows {
            let fed = fed.get(row).map_or(&[][..], Vec::as_slice);
            for (input, value) in self.at(row, step, fed).into_iter().enumerate() {
                by_input[input].push(vec![value]);
            }
        }
        by_input
    }
}

/// A batch of sequences being continued, one model step at a time.
pub struct Session<'m> {
    model: &'m MelodyModel,
    stepper: Stepper,
    state: LstmState,
    /// `(rows, vocab)` logits for the next token of each row.
    logits: Tensor,
    side: SideValues,
    /// The melody (row of `side`) each batch row continues.
    rows: Vec<usize>,
    /// Per row of `side`, the ids fed to it so far, for the inputs that echo
    /// them (empty when no row has such inputs).
    fed: Vec<Vec<u32>>,
    /// Steps fed so far.
    step: usize,
}

impl<'m> Session<'m> {
    /// Runs `ids` (the same for every row) once with each row's side values,
    /// and keeps the state.
    pub fn start(
        model: &'m MelodyModel,
        ids: &[u32],
        rows: usize,
        side: SideValues,
    ) -> Result<Self, SampleError> {
        let inputs = model.config.side_inputs.len();
        if side.rows.len() != if inputs == 0 { 0 } else { rows } {
            return Err(SampleError::SideValues {
                inputs,
                rows,
                given: side.rows.len(),
            });
        }
        if ids.is_empty() {
            return Err(SampleError::EmptyPrefix);
        }
        for schedule in &side.rows {
            let inputs = schedule.values.len();
            if let Some(echo) = schedule.echoes.iter().find(|echo| echo.input >= inputs) {
                return Err(SampleError::EchoInput {
                    input: echo.input,
                    inputs,
                });
            }
        }
        // Stepped through like the tokens that follow, with the weights laid
        // out once (a prefix is short, and a batch's start is paid per batch).
        let mut session = Self {
            model,
            stepper: model.stepper()?,
            state: model.zero_state(rows)?,
            logits: Tensor::zeros((rows, model.config.vocab_size), DType::F32, model.device())?,
            // Only a melody with echoes needs its ids kept.
            fed: if side.rows.iter().any(|row| !row.echoes.is_empty()) {
                vec![Vec::new(); side.rows.len()]
            } else {
                Vec::new()
            },
            side,
            rows: (0..rows).collect(),
            step: 0,
        };
        for &id in ids {
            session.advance(&vec![id; rows])?;
        }
        Ok(session)
    }

    /// Next-token logits of every row.
    pub fn logits(&self) -> Result<Vec<Vec<f32>>, SampleError> {
        Ok(self.logits.to_dtype(DType::F32)?.to_vec2()?)
    }

    /// Feeds one id per row.
    pub fn advance(&mut self, ids: &[u32]) -> Result<(), SampleError> {
        let input = Tensor::new(ids, self.model.device())?;
        if !self.fed.is_empty() {
            for (&row, &id) in self.rows.iter().zip(ids) {
                self.fed[row].push(id);
            }
        }
        let columns = self.side.column(
            &self.rows,
            self.step,
            self.model.config.side_inputs.len(),
            &self.fed,
        );
        let side = self
            .model
            .side_tensors(&columns)?
            .into_iter()
            .map(|t| t.squeeze(1))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let state = self.state.clone();
        let (logits, state) = self.stepper.step(&input, &side, state)?;
        self.logits = logits;
        self.state = state;
        self.step += 1;
        Ok(())
    }

    /// Keeps only the given batch rows (in that order), dropping the others'
    /// state.
    pub fn keep_rows(&mut self, rows: &[usize]) -> Result<(), SampleError> {
        let index = Tensor::new(
            rows.iter().map(|&r| r as u32).collect::<Vec<_>>(),
            self.model.device(),
        )?;
        for layer in &mut self.state.layers {
            layer.h = layer.h.index_select(&index, 0)?;
            layer.c = layer.c.index_select(&index, 0)?;
        }
        self.logits = self.logits.index_select(&index, 0)?;
        self.rows = rows.iter().map(|&r| self.rows[r]).collect();
        Ok(())
    }

    /// Keeps only the batch rows that continue the given rows of the side
    /// values (in that order).
    fn keep_side_rows(&mut self, side_rows: &[usize]) -> Result<(), SampleError> {
        let size = self.rows.iter().copied().max().map_or(0, |row| row + 1);
        let mut position = vec![usize::MAX; size];
        for (batch_row, &side_row) in self.rows.iter().enumerate() {
            position[side_row] = batch_row;
        }
        let batch_rows: Vec<usize> = side_rows.iter().map(|&r| position[r]).collect();
        self.keep_rows(&batch_rows)
    }
}

/// The smallest temperature the logits are divided by. Below it (1.3e-51 is
/// 0 in f32) the quotients overflowed to infinities and the softmax to NaN;
/// at it, logits up to 1e8 stay finite and the likeliest token is a sure
/// choice. Every temperature above it divides as given, so that melodies stay
/// as they were.
const MIN_TEMPERATURE: f32 = 1e-30;

/// Next-token probabilities of each row of `(rows, vocab)` logits, each at
/// its own temperature.
fn probabilities(logits: &Tensor, temperatures: &[f64]) -> Result<Vec<Vec<f32>>, SampleError> {
    let rows = temperatures.len();
    let temperatures: Vec<f32> = temperatures
        .iter()
        .map(|&t| (t as f32).max(MIN_TEMPERATURE))
        .collect();
    let temperatures = Tensor::from_vec(temperatures, (rows, 1), logits.device())?;
    let scaled = logits.to_dtype(DType::F32)?.broadcast_div(&temperatures)?;
    Ok(softmax(&scaled)?.to_vec2()?)
}

fn softmax(logits: &Tensor) -> candle_core::Result<Tensor> {
    let logits = logits.to_dtype(DType::F32)?;
    let max = logits.max_keepdim(D::Minus1)?;
    let exp = logits.broadcast_sub(&max)?.exp()?;
    exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)
}

/// Next-token probabilities of the `active` melodies, from the session's
/// `logits` (their rows first, then their contrasts' in the same order), each
/// at its own temperature and guided by its contrast where it has one. The
/// guidance re-weights only which pitch a new note takes (`is_note` per id):
/// the chance of a new note, a hold, a rest or the end stays the model's, so
/// that the melody keeps the model's rhythm.
fn guided_probabilities(
    logits: &Tensor,
    active: &[usize],
    plans: &[MelodyPlan],
    temperatures: &[f64],
    is_note: &[bool],
) -> Result<Vec<Vec<f32>>, SampleError> {
    let melodies = active.len();
    if logits.dim(0)? == melodies {
        return probabilities(logits, temperatures);
    }
    let own = logits.narrow(0, 0, melodies)?;
    // Each melody's contrast row, or its own row where it has none (a zero
    // difference).
    let mut contrasts = 0;
    let mut index = Vec::with_capacity(melodies);
    let mut weights = Vec::with_capacity(melodies);
    for (batch_row, &melody) in active.iter().enumerate() {
        match &plans[melody].contrast {
            Some(contrast) => {
                index.push((melodies + contrasts) as u32);
                weights.push(contrast.weight as f32);
                contrasts += 1;
            }
            None => {
                index.push(batch_row as u32);
                weights.push(0.0);
            }
        }
    }
    let device = logits.device();
    let other = logits.index_select(&Tensor::new(index, device)?, 0)?;
    let weights = Tensor::from_vec(weights, (melodies, 1), device)?.to_dtype(own.dtype())?;
    let guided = (&own + (&own - other)?.broadcast_mul(&weights)?)?;
    let mut own = probabilities(&own, temperatures)?;
    let guided = probabilities(&guided, temperatures)?;
    let notes = |probs: &[f32]| -> f32 {
        probs
            .iter()
            .zip(is_note)
            .filter(|(_, note)| **note)
            .map(|(p, _)| p)
            .sum()
    };
    for ((row, &melody), guided) in own.iter_mut().zip(active).zip(guided) {
        if plans[melody].contrast.is_none() {
            continue;
        }
        let (own_notes, guided_notes) = (notes(row), notes(&guided));
        if guided_notes <= 0.0 {
            continue;
        }
        let scale = own_notes / guided_notes;
        for ((p, g), note) in row.iter_mut().zip(guided).zip(is_note) {
            if *note {
                *p = g * scale;
            }
        }
    }
    Ok(own)
}

/// Picks an index from `probs` after top-k and top-p filtering.
fn pick(probs: &mut [f32], config: &SamplingConfig, rng: &mut ChaCha8Rng) -> usize {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    let mut keep = order.len();
    if let Some(k) = config.top_k {
        keep = keep.min(k);
    }
    if let Some(p) = config.top_p {
        let mut mass = 0.0;
        for (rank, &index) in order.iter().enumerate() {
            mass += f64::from(probs[index]);
            if mass >= p {
                keep = keep.min(rank + 1);
                break;
            }
        }
    }
    for &index in &order[keep..] {
        probs[index] = 0.0;
    }
    let total: f32 = probs.iter().sum();
    if total <= 0.0 {
        return order[0];
    }
    let mut target = rng.random::<f32>() * total;
    for (index, &p) in probs.iter().enumerate() {
        if target < p {
            return index;
        }
        target -= p;
    }
    order[0]
}

/// One melody to generate: how its tokens are picked (with its own seed),
/// its side values as in [`SideValues`] (empty for a model without side
/// inputs), and side values to steer away from.
#[derive(Debug, Clone, PartialEq)]
pub struct MelodyPlan {
    pub config: SamplingConfig,
    pub side: Schedule,
    pub contrast: Option<Contrast>,
    /// Per grid step (the primer's included, as the side values are): how
    /// many steps back is the token this step says again instead of
    /// drawing one, as a song's form says a bar again (`None`, or past the
    /// list's end: drawn).
    pub copies: Vec<Option<usize>>,
}

impl MelodyPlan {
    /// The token at grid step `step` of a melody whose tokens so far are
    /// `tokens`, when the plan copies it.
    fn copied(&self, step: usize, tokens: &[u32]) -> Option<u32> {
        let lag = (*self.copies.get(step)?)?;
        tokens.get(step.checked_sub(lag)?).copied()
    }
}

/// Guidance by contrast, as classifier-free guidance does with an
/// unconditioned model: the melody's tokens also run with other side values,
/// and its next-token logits `l` become `l + weight * (l - l_contrast)`, which
/// strengthens whatever its own side values say and the contrast's do not.
/// Weight 0 samples as without a contrast (at the cost of its rows).
#[derive(Debug, Clone, PartialEq)]
pub struct Contrast {
    pub side: Schedule,
    pub weight: f64,
}

/// Generates `count` melodies continuing `primer` (which may be empty: every
/// melody starts after `.`, as songs do in training), each with its side
/// values; melody `i` is drawn with seed `config.seed + i`. Returns each
/// melody's tokens after the primer, without the closing `.`, and whether it
/// closed.
pub fn generate(
    model: &MelodyModel,
    vocabulary: &Vocabulary,
    primer: &[Token],
    count: usize,
    config: &SamplingConfig,
    side: SideValues,
) -> Result<Vec<(Vec<Token>, bool)>, SampleError> {
    let inputs = model.config.side_inputs.len();
    if inputs > 0 && side.rows.len() != count {
        return Err(SampleError::SideValues {
            inputs,
            rows: count,
            given: side.rows.len(),
        });
    }
    let mut sides = side.rows.into_iter();
    let plans: Vec<MelodyPlan> = (0..count)
        .map(|index| MelodyPlan {
            config: SamplingConfig {
                seed: config.seed.wrapping_add(index as u64),
                ..*config
            },
            side: sides.next().unwrap_or_default(),
            contrast: None,
            copies: Vec::new(),
        })
        .collect();
    generate_each(model, vocabulary, primer, &plans)
}

/// Generates one melody per plan, all continuing `primer`, as one batch.
/// Each melody depends only on its own plan, not on the others in the batch,
/// so a melody comes out the same alone or beside others.
pub fn generate_each(
    model: &MelodyModel,
    vocabulary: &Vocabulary,
    primer: &[Token],
    plans: &[MelodyPlan],
) -> Result<Vec<(Vec<Token>, bool)>, SampleError> {
    for plan in plans {
        plan.config.validate()?;
        if let Some(contrast) = &plan.contrast {
            if model.config.side_inputs.is_empty() {
                return Err(SampleError::ContrastWithoutSideInputs);
            }
            if !(contrast.weight >= 0.0 && contrast.weight.is_finite()) {
                return Err(SampleError::ContrastWeight(contrast.weight));
            }
        }
    }
    let count = plans.len();
    if count == 0 {
        return Err(SampleError::NoMelodies);
    }
    if model.config.vocab_size != vocabulary.len() {
        return Err(SampleError::Mismatch {
            model: model.config.vocab_size,
            vocabulary: vocabulary.len(),
        });
    }
    let primer: Vec<Token> = primer
        .iter()
        .copied()
        .filter(|t| *t != Token::End)
        .collect();
    if primer.first() == Some(&Token::Hold) {
        return Err(SampleError::PrimerStartsWithHold);
    }
    let end = vocabulary.id(Token::End).expect("`.` is always id 0");
    let hold = vocabulary.id(Token::Hold);
    let mut ids = vec![end];
    ids.extend(vocabulary.ids(&primer)?);
    // Rows of side values: each melody's own, then the contrasts'.
    let mut side_rows: Vec<Schedule> = if model.config.side_inputs.is_empty() {
        Vec::new()
    } else {
        plans.iter().map(|plan| plan.side.clone()).collect()
    };
    let mut contrast_row = vec![None; count];
    for (melody, plan) in plans.iter().enumerate() {
        if let Some(contrast) = &plan.contrast {
            contrast_row[melody] = Some(side_rows.len());
            side_rows.push(contrast.side.clone());
        }
    }
    let is_note: Vec<bool> = vocabulary
        .tokens()
        .iter()
        .map(|token| matches!(token, Token::Note(_)))
        .collect();
    let mut melody_of: Vec<usize> = (0..count).collect();
    melody_of.extend((0..count).filter(|&m| contrast_row[m].is_some()));
    // The session's rows for the melodies still going: theirs, then their
    // contrasts', so the first `active.len()` rows are the melodies'.
    let layout = |active: &[usize]| -> Vec<usize> {
        active
            .iter()
            .copied()
            .chain(active.iter().filter_map(|&m| contrast_row[m]))
            .collect()
    };
    let mut session = Session::start(model, &ids, melody_of.len(), SideValues { rows: side_rows })?;
    let mut rngs: Vec<ChaCha8Rng> = plans
        .iter()
        .map(|plan| ChaCha8Rng::seed_from_u64(plan.config.seed))
        .collect();
    let mut melodies: Vec<(Vec<Token>, bool)> = vec![(Vec::new(), false); count];
    // Per row: has a note or rest started (so `_` may follow), has a note sounded
    // (so `.` may end it). Kept as flags so that each step costs the same.
    let mut started = vec![
        primer
            .iter()
            .any(|t| matches!(t, Token::Note(_) | Token::Rest));
        count
    ];
    let mut sounded = vec![primer.iter().any(|t| matches!(t, Token::Note(_))); count];
    // The melodies still going; a finished melody leaves the batch, so the
    // long tail of a batch costs only its own rows.
    let mut active: Vec<usize> = (0..count)
        .filter(|&row| plans[row].config.max_len > 0)
        .collect();
    if active.is_empty() {
        return Ok(melodies);
    }
    let mut rows = layout(&active);
    if rows.len() < melody_of.len() {
        session.keep_side_rows(&rows)?;
    }
    let longest = plans
        .iter()
        .map(|plan| plan.config.max_len)
        .max()
        .unwrap_or(0);
    let mut next = vec![0u32; count];
    // Each melody's ids from its first grid step, for the steps it copies.
    let mut so_far = vec![ids[1..].to_vec(); count];
    for length in 0..longest {
        let temperatures: Vec<f64> = active
            .iter()
            .map(|&row| plans[row].config.temperature)
            .collect();
        let mut probabilities =
            guided_probabilities(&session.logits, &active, plans, &temperatures, &is_note)?;
        let mut still_active = Vec::with_capacity(active.len());
        for (batch_row, probs) in probabilities.iter_mut().enumerate() {
            let row = active[batch_row];
            let config = &plans[row].config;
            let (tokens, closed) = &mut melodies[row];
            if config.grammar {
                if let (false, Some(hold)) = (started[row], hold) {
                    probs[hold as usize] = 0.0;
                }
                if !sounded[row] {
                    probs[end as usize] = 0.0;
                }
            }
            let copied = plans[row].copied(primer.len() + length, &so_far[row]);
            let id = match copied {
                Some(id) => id,
                None => pick(probs, config, &mut rngs[row]) as u32,
            };
            if id == end {
                *closed = true;
                continue;
            }
            let token = vocabulary.decode(&[id])?[0];
            started[row] |= matches!(token, Token::Note(_) | Token::Rest);
            sounded[row] |= matches!(token, Token::Note(_));
            tokens.push(token);
            so_far[row].push(id);
            if length + 1 < config.max_len {
                next[row] = id;
                still_active.push(row);
            }
        }
        if still_active.is_empty() {
            break;
        }
        if still_active.len() < active.len() {
            active = still_active;
            rows = layout(&active);
            session.keep_side_rows(&rows)?;
        }
        let ids: Vec<u32> = rows.iter().map(|&row| next[melody_of[row]]).collect();
        session.advance(&ids)?;
    }
    Ok(melodies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use grid_codec::parse_tokens;
    use lstm_candle::ModelConfig;

    fn setup() -> (MelodyModel, Vocabulary) {
        let songs = [parse_tokens("60 _ 62 _ r _ 64 _ _ _").unwrap()];
        let vocabulary = Vocabulary::build(songs.iter().map(Vec::as_slice));
        let config = ModelConfig {
            vocab_size: vocabulary.len(),
            embedding_dim: 4,
            hidden_size: 8,
            num_layers: 2,
            dropout: 0.0,
            side_inputs: Vec::new(),
        };
        (
            MelodyModel::new(config, &Device::Cpu, DType::F32, 1).unwrap(),
            vocabulary,
        )
    }

    #[test]
    fn same_seed_same_melodies() {
        let (model, vocabulary) = setup();
        let config = SamplingConfig {
            seed: 4,
            max_len: 40,
            ..Default::default()
        };
        let a = generate(&model, &vocabulary, &[], 3, &config, SideValues::default()).unwrap();
        let b = generate(&model, &vocabulary, &[], 3, &config, SideValues::default()).unwrap();
        assert_eq!(a, b);
        let c = generate(
            &model,
            &vocabulary,
            &[],
            3,
            &SamplingConfig { seed: 5, ..config },
            SideValues::default(),
        )
        .unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn a_tiny_temperature_always_takes_the_likeliest_token() {
        // Found by the API's property test: 1.3e-51 is 0 in f32, and logits
        // divided by it were infinite, their softmax NaN, the melody empty.
        let (model, vocabulary) = setup();
        let melody = |temperature: f64, top_k: Option<usize>, seed: u64| {
            let config = SamplingConfig {
                seed,
                temperature,
                top_k,
                max_len: 30,
                ..Default::default()
            };
            generate(&model, &vocabulary, &[], 1, &config, SideValues::default()).unwrap()
        };
        let greedy = melody(1.0, Some(1), 1);
        assert!(!greedy[0].0.is_empty());
        for temperature in [1.3e-51, 1e-40, 1e-30, 1e-9] {
            for seed in [1, 2] {
                assert_eq!(melody(temperature, None, seed), greedy, "{temperature}");
            }
        }
    }

    #[test]
    fn a_plan_copies_the_steps_it_says_again() {
        let (model, vocabulary) = setup();
        let plan = |copies: Vec<Option<usize>>| MelodyPlan {
            config: SamplingConfig {
                seed: 7,
                temperature: 3.0,
                max_len: 30,
                grammar: false,
                ..Default::default()
            },
            side: Schedule::default(),
            contrast: None,
            copies,
        };
        let primer = parse_tokens("60 _ 62 _ 64 _ 62 _").unwrap();
        let melody = |copies| {
            let generated = generate_each(&model, &vocabulary, &primer, &[plan(copies)]);
            let mut tokens = primer.clone();
            tokens.extend(generated.unwrap().remove(0).0);
            tokens
        };
        // Grid steps 8-15 say the primer's again; step 16 would look back
        // before the start, so it is drawn.
        let mut copies = vec![None; 17];
        copies[8..16].fill(Some(8));
        copies[16] = Some(20);
        let copied = melody(copies);
        assert!(copied.len() >= 16, "{copied:?}");
        assert_eq!(copied[8..16], copied[..8]);
        assert_ne!(melody(Vec::new()).get(8..16), Some(&copied[8..16]));
    }

    #[test]
    fn a_melody_is_the_same_alone_or_in_a_batch() {
        let (model, vocabulary) = setup();
        let plan = |seed, temperature, max_len| MelodyPlan {
            config: SamplingConfig {
                seed,
                temperature,
                max_len,
                ..Default::default()
            },
            side: Schedule::default(),
            contrast: None,
            copies: Vec::new(),
        };
        let plans = [
            plan(7, 1.0, 40),
            plan(3, 0.5, 10),
            plan(7, 2.0, 25),
            plan(9, 1.0, 0),
        ];
        let together = generate_each(&model, &vocabulary, &[], &plans).unwrap();
        for (plan, melody) in plans.iter().zip(&together) {
            let alone =
                generate_each(&model, &vocabulary, &[], std::slice::from_ref(plan)).unwrap();
            assert_eq!(&alone[0], melody, "{plan:?}");
            assert!(melody.0.len() <= plan.config.max_len);
        }
        assert_eq!(together[3], (Vec::new(), false));
        // `generate` draws melody i with seed + i.
        let config = SamplingConfig {
            seed: 3,
            max_len: 10,
            temperature: 0.5,
            ..Default::default()
        };
        let batch = generate(&model, &vocabulary, &[], 2, &config, SideValues::default()).unwrap();
        assert_eq!(batch[0], together[1]);
    }

    /// A model reading one side input of three values, as a mode would be.
    fn setup_with_side_input() -> (MelodyModel, Vocabulary) {
        let (model, vocabulary) = setup();
        let config = ModelConfig {
            side_inputs: vec![lstm_candle::SideInput {
                name: "mode".into(),
                size: 3,
            }],
            ..model.config.clone()
        };
        (
            MelodyModel::new(config, &Device::Cpu, DType::F32, 2).unwrap(),
            vocabulary,
        )
    }

    fn guided_plan(seed: u64, max_len: usize, value: u32, contrast: Option<f64>) -> MelodyPlan {
        MelodyPlan {
            config: SamplingConfig {
                seed,
                max_len,
                temperature: 1.5,
                ..Default::default()
            },
            side: Schedule::fixed(vec![vec![value]]),
            contrast: contrast.map(|weight| Contrast {
                side: Schedule::fixed(vec![vec![3 - value]]),
                weight,
            }),
            copies: Vec::new(),
        }
    }

    #[test]
    fn a_guided_melody_is_the_same_alone_or_in_a_batch() {
        let (model, vocabulary) = setup_with_side_input();
        // Melodies of different lengths, with and without contrasts, so that
        // rows leave the batch while their contrasts' rows must follow. The
        // weights are large so that a wrong contrast row shows in the tokens
        // of a small untrained model.
        let plans = [
            guided_plan(1, 30, 1, Some(40.0)),
            guided_plan(2, 5, 2, None),
            guided_plan(3, 12, 2, Some(30.0)),
            guided_plan(4, 0, 1, Some(1.0)),
            guided_plan(6, 40, 2, Some(50.0)),
            guided_plan(5, 20, 1, None),
        ];
        for primer in ["", "60 _ 62"] {
            let primer = parse_tokens(primer).unwrap();
            let together = generate_each(&model, &vocabulary, &primer, &plans).unwrap();
            for (plan, melody) in plans.iter().zip(&together) {
                let alone = generate_each(&model, &vocabulary, &primer, std::slice::from_ref(plan))
                    .unwrap();
                assert_eq!(&alone[0], melody, "{plan:?}");
            }
        }
        // Weight 0 samples exactly as without a contrast; a weight changes
        // the melody.
        let unguided = generate_each(&model, &vocabulary, &[], &[guided_plan(1, 30, 1, None)]);
        let weight_zero = generate_each(
            &model,
            &vocabulary,
            &[],
            &[guided_plan(1, 30, 1, Some(0.0))],
        );
        assert_eq!(unguided.unwrap(), weight_zero.unwrap());
        let strong = (1..20)
            .map(|seed| {
                let plain =
                    generate_each(&model, &vocabulary, &[], &[guided_plan(seed, 30, 1, None)]);
                let guided = generate_each(
                    &model,
                    &vocabulary,
                    &[],
                    &[guided_plan(seed, 30, 1, Some(2.0))],
                );
                plain.unwrap() != guided.unwrap()
            })
            .filter(|differs| *differs)
            .count();
        assert!(strong > 0, "guidance never changed a melody");
    }

    #[test]
    fn guidance_reweights_only_which_pitch_a_note_takes() {
        // Vocabulary `.`, `_`, `r`, 60, 62; one melody, its contrast row second.
        let is_note = [false, false, false, true, true];
        let own = [0.0f32, 1.0, 0.5, 2.0, 1.0];
        let contrast = [3.0f32, 0.0, 0.0, 1.0, 2.0];
        let logits = Tensor::new(&[own, contrast], &Device::Cpu).unwrap();
        let plans = [guided_plan(0, 1, 1, Some(1.0))];
        let got = guided_probabilities(&logits, &[0], &plans, &[1.0], &is_note).unwrap();
        // By hand: the model's chances of `.`, `_`, `r` and of a note stay;
        // the note's pitch follows 2 * own - contrast = 3 and 0 for 60 and 62.
        let exp: Vec<f64> = own.iter().map(|&l| f64::from(l).exp()).collect();
        let total: f64 = exp.iter().sum();
        let note = (exp[3] + exp[4]) / total;
        let e3 = 3f64.exp();
        let expected = [
            exp[0] / total,
            exp[1] / total,
            exp[2] / total,
            note * e3 / (e3 + 1.0),
            note / (e3 + 1.0),
        ];
        for (g, e) in got[0].iter().zip(expected) {
            assert!(
                (f64::from(*g) - e).abs() < 1e-6,
                "{:?} vs {expected:?}",
                got[0]
            );
        }
    }

    #[test]
    fn contrasts_are_refused_where_they_mean_nothing() {
        let (model, vocabulary) = setup();
        let error = generate_each(&model, &vocabulary, &[], &[guided_plan(0, 5, 1, Some(1.0))])
            .unwrap_err();
        assert!(
            matches!(error, SampleError::ContrastWithoutSideInputs),
            "{error}"
        );
        let (model, vocabulary) = setup_with_side_input();
        for weight in [-0.5, f64::NAN, f64::INFINITY] {
            let error = generate_each(
                &model,
                &vocabulary,
                &[],
                &[guided_plan(0, 5, 1, Some(weight))],
            )
            .unwrap_err()
            .to_string();
            assert!(error.contains("contrast weight"), "{error}");
        }
    }

    #[test]
    fn a_kept_stepper_steps_as_a_fresh_one_and_a_prefix_is_needed() {
        let (mut model, vocabulary) = setup();
        let prefix: Vec<u32> = vocabulary.encode(". 60 _ 62").unwrap();
        let logits = |model: &MelodyModel| {
            Session::start(model, &prefix, 2, SideValues::default())
                .unwrap()
                .logits()
                .unwrap()
        };
        let fresh = logits(&model);
        model.keep_stepper().unwrap();
        assert_eq!(logits(&model), fresh);
        assert!(matches!(
            Session::start(&model, &[], 1, SideValues::default()),
            Err(SampleError::EmptyPrefix)
        ));
    }

    #[test]
    fn stateful_steps_give_the_full_prefix_distribution() {
        let (model, vocabulary) = setup();
        let prefix: Vec<u32> = vocabulary.encode(". 60 _ 62 r _ 64").unwrap();
        let mut session = Session::start(&model, &prefix[..1], 1, SideValues::default()).unwrap();
        for t in 1..prefix.len() {
            session.advance(&prefix[t..=t]).unwrap();
            let input = model.ids_tensor(&[prefix[..=t].to_vec()]).unwrap();
            let (full, _) = model.forward(&input, &[], None, None).unwrap();
            let expected: Vec<f32> = full.get(0).unwrap().get(t).unwrap().to_vec1().unwrap();
            let got = &session.logits().unwrap()[0];
            let worst = got
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(worst < 1e-5, "step {t}: {worst}");
        }
    }

    #[test]
    fn echoed_inputs_are_the_lookback_values_training_reads() {
        use grid_codec::conditions::{Asked, BarLayout, Conditioning, Lookback, SongConditions};
        let (model, vocabulary) = setup();
        let conditioning = Conditioning {
            lookback: Some(Lookback {
                bars: vec![1, 2],
                tokens: vocabulary.len() as u32,
                forms: Some(Vec::new()),
            }),
            ..Conditioning::from_songs([])
        };
        let config = ModelConfig {
            side_inputs: conditioning
                .inputs()
                .into_iter()
                .map(|(name, size)| lstm_candle::SideInput { name, size })
                .collect(),
            ..model.config.clone()
        };
        let model = MelodyModel::new(config, &Device::Cpu, DType::F32, 3).unwrap();
        let asked = Asked {
            meter: "2/4".parse().unwrap(),
            minor: false,
            style: "other".into(),
            bars: 2,
            pickup: 0,
            form: Some("AA".into()),
        };
        let ids = vocabulary
            .encode("60 _ 62 _ r _ 64 _ 60 _ 62 _ r _ 64 _ 62 _ 60 _")
            .unwrap();
        let schedule = conditioning
            .schedule(&asked, grid_codec::default_step(), ids.len())
            .unwrap();
        // What training reads: the same fixed inputs, and the lookback's
        // values over the whole song, 8 and 16 steps back.
        let song = SongConditions {
            layout: Some(BarLayout::regular(8, 0, 2)),
            ..Default::default()
        };
        let mut side = schedule.values[..5].to_vec();
        let read = conditioning.values(&song, &ids);
        side.extend_from_slice(&read[5..]);
        let nothing = vocabulary.len() as u32;
        assert_eq!(side[6][15..18], [nothing, ids[0], ids[1]]);
        // The form, asked and read from the song alike: its second bar says
        // the first again (lag 1, the first lookback: value 2); the third,
        // past the bars asked, is a bar of its own (1).
        let form: Vec<u32> = [[1; 8], [2; 8]]
            .concat()
            .into_iter()
            .chain([1; 5])
            .collect();
        assert_eq!(read[7], form);
        assert_eq!(schedule.values[7], form);
        let mut dotted = vec![0];
        dotted.extend(&ids);
        let input = model.ids_tensor(&[dotted.clone()]).unwrap();
        let rows: Vec<Vec<Vec<u32>>> = side.iter().map(|values| vec![values.clone()]).collect();
        let (full, _) = model
            .forward(&input, &model.side_tensors(&rows).unwrap(), None, None)
            .unwrap();
        let mut session = Session::start(
            &model,
            &dotted[..1],
            1,
            SideValues {
                rows: vec![schedule],
            },
        )
        .unwrap();
        for t in 1..dotted.len() {
            session.advance(&dotted[t..=t]).unwrap();
            let expected: Vec<f32> = full.get(0).unwrap().get(t).unwrap().to_vec1().unwrap();
            let worst = session.logits().unwrap()[0]
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(worst < 1e-5, "step {t}: {worst}");
        }
        // An echo of an input the schedule does not have is refused.
        let mut misplaced = conditioning
            .schedule(&asked, grid_codec::default_step(), ids.len())
            .unwrap();
        misplaced.echoes[0].input = 8;
        assert!(matches!(
            Session::start(
                &model,
                &dotted[..1],
                1,
                SideValues {
                    rows: vec![misplaced]
                }
            ),
            Err(SampleError::EchoInput {
                input: 8,
                inputs: 8
            })
        ));
    }

    #[test]
    fn grammar_never_starts_with_a_hold_or_ends_empty() {
        let (model, vocabulary) = setup();
        for seed in 0..30 {
            let config = SamplingConfig {
                seed,
                max_len: 30,
                temperature: 3.0,
                ..Default::default()
            };
            for (tokens, closed) in
                generate(&model, &vocabulary, &[], 4, &config, SideValues::default()).unwrap()
            {
                assert_ne!(tokens.first(), Some(&Token::Hold), "seed {seed}");
                if closed {
                    assert!(
                        tokens.iter().any(|t| matches!(t, Token::Note(_))),
                        "seed {seed}"
                    );
                }
            }
        }
    }

    #[test]
    fn bad_settings_and_primers_are_refused() {
        let (model, vocabulary) = setup();
        let run = |config: SamplingConfig, primer: &str| {
            generate(
                &model,
                &vocabulary,
                &parse_tokens(primer).unwrap(),
                1,
                &config,
                SideValues::default(),
            )
            .unwrap_err()
            .to_string()
        };
        let base = SamplingConfig::default();
        assert!(
            run(
                SamplingConfig {
                    temperature: 0.0,
                    ..base
                },
                ""
            )
            .contains("temperature 0")
        );
        assert!(
            run(
                SamplingConfig {
                    temperature: f64::NAN,
                    ..base
                },
                ""
            )
            .contains("temperature NaN")
        );
        assert!(
            run(
                SamplingConfig {
                    top_p: Some(1.5),
                    ..base
                },
                ""
            )
            .contains("top-p 1.5")
        );
        assert!(
            run(
                SamplingConfig {
                    top_p: Some(0.0),
                    ..base
                },
                ""
            )
            .contains("top-p 0")
        );
        assert!(run(base, "_ 60").contains("cannot start with `_`"));
        assert!(run(base, "60 _ 61").contains("nearest known: 60, 62"));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut probs = vec![0.1, 0.5, 0.4];
        let config = SamplingConfig {
            top_k: Some(1),
            ..Default::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(pick(&mut probs, &config, &mut rng), 1);
        let probs = vec![0.1, 0.5, 0.4];
        let config = SamplingConfig {
            top_p: Some(0.85),
            ..Default::default()
        };
        for _ in 0..20 {
            let mut p = probs.clone();
            assert_ne!(pick(&mut p, &config, &mut rng), 0);
        }
    }
}
