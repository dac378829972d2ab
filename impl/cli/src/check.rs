//! `aver check` (placeholder until its issue lands; replaced by the module's owner).

use clap::Args;

/// Arguments of `aver check`.
#[derive(Args)]
pub struct CheckArgs {}

/// Arguments of `aver bench check`.
#[derive(Args)]
pub struct BenchArgs {}

/// Runs `aver check`.
pub fn run(_: CheckArgs) -> anyhow::Result<u8> {
    anyhow::bail!("aver check is not built yet")
}

/// Runs `aver bench check`.
pub fn bench(_: BenchArgs) -> anyhow::Result<u8> {
    anyhow::bail!("aver bench check is not built yet")
}

/// Arguments of `aver explore`.
#[derive(Args)]
pub struct ExploreArgs {}

/// Runs `aver explore`.
pub fn explore(_: ExploreArgs) -> anyhow::Result<u8> {
    anyhow::bail!("aver explore is not built yet")
}
