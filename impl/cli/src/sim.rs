//! `aver sim` (placeholder until its issue lands; replaced by the module's owner).

use clap::Args;

/// Arguments of `aver sim`.
#[derive(Args)]
pub struct SimArgs {}

/// Arguments of `aver bench sim`.
#[derive(Args)]
pub struct BenchArgs {}

/// Runs `aver sim`.
pub fn run(_: SimArgs) -> anyhow::Result<u8> {
    anyhow::bail!("aver sim is not built yet")
}

/// Runs `aver bench sim`.
pub fn bench(_: BenchArgs) -> anyhow::Result<u8> {
    anyhow::bail!("aver bench sim is not built yet")
}
