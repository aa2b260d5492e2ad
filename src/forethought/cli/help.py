"""The help texts of the ``forethought`` command."""

DESCRIPTION = """Model-based reinforcement learning: learn how a system moves from a few real
transitions, measure how good that model is, and plan or train policies inside it."""

FIT_MODEL_HELP = """Collect random-action transitions from an environment (or load logged ones with
--data), fit a dynamics model, and measure it on held-out episodes: one-step error, open-loop
error over --horizon steps, and calibration of the predicted uncertainty, each compared with a
constant-delta baseline. Writes a run directory with config.yaml, metrics.csv (one row per
training epoch), TensorBoard events, checkpoints/model.{safetensors,json}, summary.json and
plots/*.png.

Any config value can be set as key.sub=value after the options, e.g.
  forethought fit-model --env pendulum-swingup model.hidden_size=64 train.lr=3e-4 device=auto
(device: cpu, the default, cuda or auto, which picks cuda where torch has it.)
Precedence: defaults < --config YAML < options < key=value overrides."""

COMPARE_HELP = """Fit several model types (default: linear, d, p, de, pe) and the constant-delta baseline
on the same transitions and score them on the same held-out episodes. Writes a run directory with
metrics.csv (one row per model), comparison.md, summary.json, checkpoints/<kind>.* and
plots/compounding_error.png with one open-loop error curve per model type. Takes the same options
and key.sub=value overrides as fit-model."""

RUN_HELP = """Learn to control an environment from scratch, for a budget of --steps real environment
steps and/or --episodes episodes (PETS: trials). Every algorithm writes the same run directory:
metrics.csv (one row per episode: episode, env_steps, return, eval_return, wall_s, then the
algorithm's own figures), TensorBoard events, the agent in checkpoints/agent/, summary.json (final
and best return of the learning curve, the oracle planner's return where the environment's exact
dynamics are known, steps to the target), plots/learning_curve.png and, where the environment
renders headless, videos/last_episode.gif. One line is printed per episode.

pets: a random trial, then per trial fit a 5-member probabilistic ensemble on all data and act by
planning in it (iCEM: 100 candidates decaying by 1.25 per iteration, 10 elites, 3 iterations over
15 steps, 5 particles with TS-inf). Overrides e.g. agent.planner.horizon=20
agent.planner.settings.population=200 agent.model.ensemble_size=7 agent.planner.propagation=ts1.

sac, dyna, mbpo, guided: learn a policy (sac: model-free; dyna: K imagined updates per real step;
mbpo: branched model rollouts and mixed real/imagined SAC updates; guided: mbpo whose actions, once
the model is fitted, are planned in the model with iCEM seeded by the policy's own rollouts); after
each episode that crosses a multiple of eval_every real steps, and at the end, the agent acting
deterministically is evaluated. Overrides e.g. eval_every=500 target=-200 agent.policy_updates=10
agent.hybrid.proposals=16 agent.hybrid.fallback_threshold=0.05.

muzero (Discrete actions only; CartPole-v1 by default): every step is a pUCT tree search (25
simulations, Dirichlet noise at the root) in learned representation, dynamics and prediction
networks trained on replayed episodes unrolled 5 steps against 10-step returns; evaluated every
2000 real steps on 3 episodes. A Box action space is refused before anything is written. Overrides
e.g. agent.search.simulations=50 agent.discount=0.997 agent.temperature="[[0, 1.0], [5000, 0.25]]"
(docs/muzero.md).

planet, dreamer (--pixels): learn from 64x64 RGB frames (action_repeat=2 by default): a latent world
model trained on sequences; planet plans with CEM in its latent space, dreamer trains an
actor-critic in imagination. Adds plots/open_loop.png and videos/open_loop.gif. Overrides e.g.
agent.model.depth=16 agent.train_steps=50 action_repeat=4 eval_every=10000.

--env: any Gymnasium id (module:Id imports the module first; dm_control/TASK-v0 with
forethought[dmc]), env_kwargs.NAME=VALUE for its constructor; Dict observations are flattened.
action_repeat=K holds each action K environment steps (rewards summed; steps count raw steps).
agent.reward and agent.termination (pets, dyna, mbpo, guided): auto (the registered functions
where the environment has them, else learned from the agent's transitions), known, learned, or
(termination) never; a learned one's held-out error is in metrics.csv (reward_mse, reward_r2,
termination_precision, termination_recall) and summary.json (task_quality).

device=cpu|cuda|auto (every algorithm): where the agent's networks, models, planner candidates,
generators and minibatches live; cpu is the default and bit-reproducible, auto picks cuda where
torch has it, and cuda without it stops with an error before anything is written. run.json
records the device used.

Presets: where forethought ships settings for the environment and algorithm (InvertedPendulum-v5,
pendulum-swingup, HalfCheetah-v5, Reacher-v5, Pusher-v5, DeepMind Control tasks; docs/presets.md),
they are laid over the defaults and under --config and your overrides, and the run prints
"preset: InvertedPendulum-v5" (or "preset: none") first; config.yaml holds the resolved values
and run.json the preset's name. --preset none (or preset=none) turns them off; --preset ID
applies the preset of another environment id."""

ABLATE_HELP = """The PETS paper's ablation: run PETS for every model type (--models) and propagation mode
(--propagation) over several seeds, each run into its own run directory OUT/runs/<variant>-seed<k>/
on --backend as compare's runs (process by default, --workers at a time; ray; sequential). Writes
metrics.csv (one row per variant, seed and trial),
ablation.md (final and best return per variant, mean and std over seeds), summary.json and
plots/return_vs_trial.png. Other settings as overrides, e.g. agent.planner.particles=20."""

COMPARE_ALGOS_HELP = """Run several algorithms (pets, sac, dyna, mbpo, guided) on one environment over several seeds with
the same budget of real steps, and measure how much real data each needs. Every run writes its own
run directory under OUT/runs/; then OUT gets curves.csv (every point of every learning curve),
compare.md (final return per algorithm: interquartile mean over seeds with a 95 % bootstrap
interval, and mean; with --target, real steps to reach it per seed and how many times as many steps
each algorithm needs as the most efficient one, with an interval), plots/compare.png (IQM return vs
real steps with shaded intervals) and summary.json. The runs go to --backend: process (default;
--workers N runs N at a time in separate processes), ray (Ray tasks on a local cluster of N CPUs,
or on the cluster at ray_address=auto|ray://host:port) or sequential (this process); a run whose
process dies or that raises is resumed from its last checkpoint, up to retries=2 times. Settings
per algorithm as overrides, e.g. pets.state_cost="{0: 1.0}" pets.model.kind=linear
mbpo.policy_updates=10 sac.hidden_size=64 eval_every=500. Each algorithm's task preset (as in run;
--preset none turns them off) lies under its section."""

RESUME_HELP = """Continue a run of forethought run (pets, sac, dyna, mbpo, guided, planet, dreamer, muzero)
killed at any point (SIGKILL included) from its last good checkpoint. The agent (models and their optimisers, replay
and model buffers, policy and critics, counters, every random generator's state, history) is
saved atomically with a checksum manifest every checkpoint_every episodes (1 by default, 10 for
planet and dreamer) and at the end; a damaged checkpoint is passed over for the previous one, with
a message. The episodes after the checkpoint are run again, so metrics.csv ends up as that of an
uninterrupted run (bit for bit on CPU, timings aside); a run killed before its first checkpoint
starts over. A config.yaml edited since the run started is refused, naming the changed keys.

--steps N / --episodes N (or steps=N, episodes=N) move the run's end: a finished run goes on to the
larger budget from its final checkpoint (config.yaml is updated, so a later resume keeps it). It
continues as a run started with that budget would, apart from the evaluation at its old end. A
budget the run has already met, or any other key, is refused before anything is written."""

EVALUATE_HELP = """Play the agent saved in a run directory of forethought run (its last good checkpoint) for
--episodes deterministic episodes in the run's environment, with its action repeat and env_kwargs,
and print each return and their mean. Episode k starts where the run's own evaluation episode k
did (a sampling planner's random draws go on from the saved agent's, so its returns can differ
a little from the run's last evaluation): 10 episodes, say, as published DeepMind Control tables
use, where a run evaluated on 3. Nothing is written to the run directory.

Example: forethought evaluate runs/pets --episodes 10"""

REPORT_HELP = """Read run directories (of run, fit-model, compare-models; for a compare OUT, give the runs
under OUT/runs/, or OUT itself) and write OUT/report.md and OUT/report.html: final and best return
per algorithm and environment over seeds (interquartile mean, 95 % bootstrap interval), learning
curves per environment (plots/curves_<env>.png), the model diagnostics each run recorded (one-step
and compounding error, calibration, latent reward error, oracle return), and links to every run's
plots and videos."""

SWEEP_HELP = """Many runs of one forethought run command from a sweep file (YAML): the settings every run
shares (base), a grid of values (every combination), random draws (random: samples, seed, params
with uniform, log_uniform, int_uniform or choice), and seeds. Every run's config is checked before
any run starts. Runs go one after another (--backend sequential), side by side in a local process
pool (process, the default) or as Ray tasks (ray: a one-machine cluster, or ray_address: auto /
ray://host:port in the file), each into OUT/runs/<name>/, with a live table of their progress. A run
that crashes or whose worker dies is resumed from its last checkpoint, up to retries times. OUT gets
sweep.yaml, runs.csv (name, varied values, seed, status, attempts, final and best return, wall_s),
sweep.md and summary.json. Started again on the same OUT, finished runs are kept and the others
resumed. Every run's config starts from the task preset of its env (as in run; preset: none in
the file turns them off). Sweep file values can also be set as key=value, e.g. retries=3
base.episodes=5."""
