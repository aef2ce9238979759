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
    /// Measure the simulator's own speed (simulated requests per wall-second).
    Bench(BenchArgs),
    /// Drive real OpenAI-compatible endpoints with the scenario's workload; writes the same
    /// outputs as `run` (API key from env SERVESIM_API_KEY, never written).
    #[cfg(feature = "live")]
    #[command(after_help = EXIT_CODES)]
    Live(crate::live::args::LiveArgs),
    /// Measure the live client's own speed (scheduling lag, concurrent streams) against a mock.
    #[cfg(feature = "live")]
    LiveBench(crate::live::bench::LiveBenchArgs),
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
    /// Write a JSON list of {router, summary} rows.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write each router's full outputs under DIR/<router>/.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Requests in the long minimal-shape run.
    #[arg(long, default_value_t = 1_000_000)]
    pub requests: u64,
    /// Folder with the bundled scenarios.
    #[arg(long, default_value = "scenarios")]
    pub scenarios: PathBuf,
}
