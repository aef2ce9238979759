//! Scenario loading: the only place that knows YAML. `raw` mirrors the file; `load` parses it
//! with serde-saphyr under input budgets, and resolution fills vLLM's defaults and checks
//! cross-field rules once, producing an immutable [`Scenario`].

pub mod raw;

pub use raw::ScenarioFile;
