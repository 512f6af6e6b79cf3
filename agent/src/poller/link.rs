//! Modbus I/O: opening TCP and RTU client contexts, and one read or write with a timeout.
//!
//! tokio-modbus reports errors in two layers (`Result<Result<T, ExceptionCode>, Error>`):
//! the outer one is the transport (I/O, framing, mismatched response), the inner one a
//! Modbus exception the device answered with. They are flattened here into [`IoError`], and
//! the caller treats them differently: an exception means the link works and only that
//! request failed, anything else means the link can no longer be trusted (a late answer
//! could be mistaken for the next one) and is closed and reopened after a backoff.

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use tokio::time::{Duration, timeout};
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::{ExceptionCode, Slave};

use crate::config::{BusSettings, ParitySetting};
use crate::plan::{ReadRequest, Space};

/// Why a Modbus exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// No complete answer within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Transport or protocol failure (connection reset, bad frame, mismatched answer).
    #[error("transport error: {0}")]
    Transport(#[from] tokio_modbus::Error),
    /// The device answered with a Modbus exception.
    #[error("device exception: {0}")]
    Exception(ExceptionCode),
}

impl IoError {
    /// True when the link must be closed (everything but an exception).
    pub fn breaks_link(&self) -> bool {
        !matches!(self, IoError::Exception(_))
    }
}

/// Data returned by one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// Register words.
    Words(Vec<u16>),
    /// Coil or discrete input bits.
    Bits(Vec<bool>),
}

/// Runs one tokio-modbus call with a timeout and flattens its nested result.
async fn call<T>(
    limit: Duration,
    fut: impl Future<Output = tokio_modbus::Result<T>>,
) -> Result<T, IoError> {
    match timeout(limit, fut).await {
        Err(_) => Err(IoError::Timeout(limit)),
        Ok(Err(e)) => Err(IoError::Transport(e)),
        Ok(Ok(Err(code))) => Err(IoError::Exception(code)),
        Ok(Ok(Ok(v))) => Ok(v),
    }
}

/// Reads `count` registers or bits of `space` from `start`.
pub async fn read(
    ctx: &mut Context,
    space: Space,
    start: u16,
    count: u16,
    limit: Duration,
) -> Result<Data, IoError> {
    let data = match space {
        Space::Coils => Data::Bits(call(limit, ctx.read_coils(start, count)).await?),
        Space::DiscreteInputs => {
            Data::Bits(call(limit, ctx.read_discrete_inputs(start, count)).await?)
        }
        Space::InputRegisters => {
            Data::Words(call(limit, ctx.read_input_registers(start, count)).await?)
        }
        Space::HoldingRegisters => {
            Data::Words(call(limit, ctx.read_holding_registers(start, count)).await?)
        }
    };
    let got = match &data {
        Data::Words(w) => w.len(),
        Data::Bits(b) => b.len(),
    };
    if got < usize::from(count) {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            format!("asked for {count} {}, got {got}", space.name()),
        );
        return Err(IoError::Transport(e.into()));
    }
    Ok(data)
}

/// Executes a planned read request.
pub async fn read_request(
    ctx: &mut Context,
    req: &ReadRequest,
    limit: Duration,
) -> Result<Data, IoError> {
    read(ctx, req.space, req.start, req.count, limit).await
}

/// Writes registers (function 6 for one register, 16 for several).
pub async fn write_registers(
    ctx: &mut Context,
    start: u16,
    words: &[u16],
    limit: Duration,
) -> Result<(), IoError> {
    match words {
        [word] => call(limit, ctx.write_single_register(start, *word)).await,
        _ => call(limit, ctx.write_multiple_registers(start, words)).await,
    }
}

/// Writes one coil (function 5).
pub async fn write_coil(
    ctx: &mut Context,
    address: u16,
    on: bool,
    limit: Duration,
) -> Result<(), IoError> {
    call(limit, ctx.write_single_coil(address, on)).await
}

/// Opens a Modbus TCP connection to `host:port` (resolving names) for `unit`.
pub async fn connect_tcp(
    host: &str,
    port: u16,
    unit: u8,
    limit: Duration,
) -> Result<Context, IoError> {
    let attempt = async {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host resolved to no address");
        for addr in tokio::net::lookup_host((host, port)).await? {
            match connect_addr(addr, unit).await {
                Ok(ctx) => return Ok(ctx),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    match timeout(limit, attempt).await {
        Err(_) => Err(IoError::Timeout(limit)),
        Ok(Err(e)) => Err(IoError::Transport(e.into())),
        Ok(Ok(ctx)) => Ok(ctx),
    }
}

async fn connect_addr(addr: SocketAddr, unit: u8) -> io::Result<Context> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(tokio_modbus::client::tcp::attach_slave(stream, Slave(unit)))
}

/// Opens a serial port for Modbus RTU with an empty input buffer (the unit is selected
/// per request with `set_slave`).
pub fn open_rtu(bus: &BusSettings) -> Result<Context, IoError> {
    use tokio_serial::SerialPort as _;
    let stream = serial_builder(&bus.port, bus)
        .and_then(|b| tokio_serial::SerialStream::open(&b))
        .and_then(|s| s.clear(tokio_serial::ClearBuffer::Input).map(|()| s))
        .map_err(|e| IoError::Transport(io::Error::from(e).into()))?;
    Ok(tokio_modbus::client::rtu::attach_slave(stream, Slave(0)))
}

fn serial_builder(
    port: &Path,
    bus: &BusSettings,
) -> Result<tokio_serial::SerialPortBuilder, tokio_serial::Error> {
    use tokio_serial::{DataBits, Parity, StopBits};
    let data_bits = if bus.data_bits == 7 {
        DataBits::Seven
    } else {
        DataBits::Eight
    };
    let stop_bits = if bus.stop_bits == 2 {
        StopBits::Two
    } else {
        StopBits::One
    };
    let parity = match bus.parity {
        ParitySetting::None => Parity::None,
        ParitySetting::Even => Parity::Even,
        ParitySetting::Odd => Parity::Odd,
    };
    let path = port.to_str().ok_or_else(|| {
        tokio_serial::Error::new(
            tokio_serial::ErrorKind::InvalidInput,
            format!("serial port path {} is not UTF-8", port.display()),
        )
    })?;
    Ok(tokio_serial::new(path, bus.baud)
        .data_bits(data_bits)
        .stop_bits(stop_bits)
        .parity(parity))
}
