//! One thread runs the sampler. Requests that arrive while it is busy wait in
//! its queue and are taken together: those of the same model and primer run
//! as one batch, so many clients at once cost little more than one.

use std::sync::Arc;
use std::sync::mpsc;

use grid_codec::Token;
use sampler::MelodyPlan;
use tokio::sync::oneshot;

use crate::catalog::Loaded;

type Generated = Result<(Vec<Token>, bool), String>;

/// One melody to generate.
pub struct Job {
    pub model: Arc<Loaded>,
    pub primer: Vec<Token>,
    pub plan: MelodyPlan,
    pub reply: oneshot::Sender<Generated>,
}

/// The queue in front of the sampler thread.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the sampler thread; it ends when every `Batcher` is dropped.
    pub fn start() -> Self {
        let (queue, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sampler".into())
            .spawn(move || run(&jobs))
            .expect("a thread starts");
        Self { queue }
    }

    /// Generates one melody, in a batch with whatever else is waiting.
    pub async fn generate(
        &self,
        model: Arc<Loaded>,
        primer: Vec<Token>,
        plan: MelodyPlan,
    ) -> Generated {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job {
                model,
                primer,
                plan,
                reply,
            })
            .map_err(|_| "the sampler has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the sampler has stopped".to_owned())?
    }
}

fn run(jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut waiting = vec![first];
        waiting.extend(jobs.try_iter());
        // Batches of one model and one primer, in arrival order.
        while !waiting.is_empty() {
            let lead = &waiting[0];
            let (model, primer) = (lead.model.clone(), lead.primer.clone());
            let (batch, rest): (Vec<Job>, Vec<Job>) = waiting
                .into_iter()
                .partition(|job| Arc::ptr_eq(&job.model, &model) && job.primer == primer);
            waiting = rest;
            let plans: Vec<MelodyPlan> = batch.iter().map(|job| job.plan.clone()).collect();
            let folder = &model.folder;
            match sampler::generate_each(&folder.model, &folder.vocabulary, &primer, &plans) {
                Ok(melodies) => {
                    for (job, melody) in batch.into_iter().zip(melodies) {
                        let _ = job.reply.send(Ok(melody));
                    }
                }
                Err(error) => {
                    let message = error.to_string();
                    for job in batch {
                        let _ = job.reply.send(Err(message.clone()));
                    }
                }
            }
        }
    }
}
