//! `aver lin` (placeholder until its issue lands; replaced by the module's owner).

use clap::Args;

/// Arguments of `aver lin`.
#[derive(Args)]
pub struct LinArgs {}

/// Arguments of `aver bench lin`.
#[derive(Args)]
pub struct BenchArgs {}

/// Runs `aver lin`.
pub fn run(_: LinArgs) -> anyhow::Result<u8> {
    anyhow::bail!("aver lin is not built yet")
}

/// Runs `aver bench lin`.
pub fn bench(_: BenchArgs) -> anyhow::Result<u8> {
    anyhow::bail!("aver bench lin is not built yet")
}
