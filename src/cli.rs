//! Command-line types (clap derive) and nothing else; `app` does the work.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

const EXIT_CODES: &str = "Exit codes:\n  0  ran, and every SLO / check passed\n  1  ran, but an SLO or a check failed\n  2  bad input or error (nothing was judged)";

#[derive(Debug, Parser)]
#[command(name = "servesim", version, about = "Discrete-event simulator and capacity planner for LLM serving on vLLM replicas", after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate a scenario and write summary.json, requests.csv and timeseries.csv.
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// Parse and check a scenario without running it.
    #[command(after_help = EXIT_CODES)]
    ValidateScenario(ValidateArgs),
    /// Print the scenario file's JSON Schema (for editors).
    Schema,
    /// Run the same workload through several routers and compare them side by side.
    #[command(after_help = EXIT_CODES)]
    Compare(CompareArgs),
    /// Rebuild the HTML report from a result folder (summary.json, requests.csv,
    /// timeseries.csv, scenario.yaml), or a comparison from a `compare --out` folder.
    #[command(after_help = EXIT_CODES)]
    Report(ReportArgs),
    /// Measure the simulator's own speed (simulated requests per wall-second).
    Bench(BenchArgs),
    /// Regression gate: re-run the scenarios named in baseline files and compare each metric
    /// with its recorded value (exit 1 on a regression).
    #[command(after_help = EXIT_CODES)]
    Check(CheckArgs),
    /// Capacity planning: search the scenario's `plan:` space for the cheapest deployment
    /// meeting its SLOs (`plan merge DIR...` combines `--shard` outputs).
    #[command(after_help = EXIT_CODES, args_conflicts_with_subcommands = true)]
    Plan(PlanArgs),
    /// Drive real OpenAI-compatible endpoints with the scenario's workload; writes the same
    /// outputs as `run` (API key from env SERVESIM_API_KEY, never written).
    #[cfg(feature = "live")]
    #[command(after_help = EXIT_CODES)]
    Live(crate::live::args::LiveArgs),
    /// Compare a real run (trace) with its simulation: side-by-side statistics, errors, KS
    /// distances (exit 1 when outside --tolerance).
    #[command(after_help = EXIT_CODES)]
    Validate(crate::validate::cmd::ValidateArgs),
    /// Fit a step-time calibration from step traces, request-level traces or GPU profiles.
    #[command(after_help = EXIT_CODES)]
    Calibrate(crate::calibrate::cmd::CalibrateArgs),
    /// Measure the live client's own speed (scheduling lag, concurrent streams) against a mock.
    #[cfg(feature = "live")]
    LiveBench(crate::live::bench::LiveBenchArgs),
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(subcommand)]
    pub merge: Option<PlanSub>,
    /// Scenario YAML file with a `plan:` section.
    pub scenario: Option<PathBuf>,
    /// Override any field: `--set plan.seeds=1`.
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    pub set: Vec<String>,
    /// Output folder (default: reports/<scenario name>-plan/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run one deterministic slice `i/n` of the configurations and write shard.json.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Write a Kubernetes Indexed Job running N shards (to --out or stdout) instead of planning.
    #[arg(long, value_name = "N")]
    pub emit_k8s_job: Option<u32>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar and only a one-line result.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum PlanSub {
    /// Combine shard folders into the same report as an unsharded run.
    Merge {
        /// Shard output folders (each with shard.json).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct ScenarioArgs {
    /// Scenario YAML file.
    pub scenario: PathBuf,
    /// Override the scenario's master seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override any field: `--set replicas=6 --set engine.max_num_seqs=128`.
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Output folder (default: reports/<scenario name>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write a self-contained HTML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Print only the summary line, not the table.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Comma-separated routers: round_robin, random, least_requests, power_of_two,
    /// kubernetes_service, epp (default profile) or epp:<profile>.
    #[arg(long, value_delimiter = ',', default_value = "round_robin,epp")]
    pub routers: Vec<String>,
    /// Compare autoscalers instead of routers (with the scenario's router): `fixed`,
    /// `scenario` (its `autoscaler:`), a name from its `autoscalers:` map, or a preset
    /// (`llm-d-keda-epp-queue`, `llm-d-wva-saturation`).
    #[arg(long, value_delimiter = ',')]
    pub autoscalers: Vec<String>,
    /// Write a JSON list of {router, summary} rows.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write each router's full outputs under DIR/<router>/.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also print a per-stage table (markdown) for `arrival: {kind: stages}` workloads.
    #[arg(long)]
    pub per_stage: bool,
    /// Also write a self-contained HTML comparison report to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Result folder written by `run` (or `compare --out`, for a comparison report).
    pub dir: PathBuf,
    /// Where to write the HTML (default: DIR/report.html).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Also dump the report's context (the data behind every chart) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub context_json: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Requests in the long minimal-shape run.
    #[arg(long, default_value_t = 1_000_000)]
    pub requests: u64,
    /// Folder with the bundled scenarios.
    #[arg(long, default_value = "scenarios")]
    pub scenarios: PathBuf,
    /// Also time the planner on coding-assistant-plan.yaml (all cores): the fixed-fleet sweep
    /// (1,020 points; target < 60 s) and the shipped sweep with autoscaled day runs.
    #[arg(long)]
    pub plan: bool,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Only these scenarios (scenario path or file stem); with --update, scenarios without a
    /// baseline get a new one.
    pub scenarios: Vec<PathBuf>,
    /// Baseline folder (every *.yaml / *.json in it) or a single baseline file.
    #[arg(long, default_value = "validation/baselines")]
    pub baseline: PathBuf,
    /// Rewrite the baselines with the current values (never in CI).
    #[arg(long)]
    pub update: bool,
    /// Extra override on top of each baseline's own, to gate a proposed change:
    /// `--set engine.max_num_seqs=64`. With --update on a new scenario: recorded overrides.
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    pub set: Vec<String>,
    /// Routers for a new baseline (--update): comma-separated, as for `compare`.
    #[arg(long, value_delimiter = ',')]
    pub routers: Vec<String>,
    /// Write a JUnit XML report (one testcase per scenario, router and metric).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write the rows as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Print every metric, not only those that moved.
    #[arg(long, short)]
    pub verbose: bool,
}
