//! `haul demo`.

use crate::cli::DemoArgs;
use crate::error::Error;

pub fn run(_args: &DemoArgs, _verbose: u8) -> Result<u8, Error> {
    Err(Error::Other("the demo is not built yet".into()))
}
