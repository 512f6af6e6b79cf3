//! Modbus request handling: the `tokio_modbus::server::Service` of a well (TCP) and of a
//! single device (RTU).
//!
//! # Protocol behaviour (as a real device / gateway would)
//!
//! * Unit id selects the device on the well's listener (1, 2, …); 255 addresses the first
//!   device; any other unknown unit → exception 0x0B (gateway target failed to respond).
//!   Over RTU, requests for other unit ids are ignored (shared bus).
//! * Supported: FC 1, 2, 3, 4 (reads), 5, 6, 15, 16 (writes). Anything else → 0x01.
//! * Read quantity 0 or above the profile's `max_registers_per_request` /
//!   `max_bits_per_request` (and the protocol limits 125 / 2000) → 0x03.
//! * Reads must cover mapped addresses; holes of at most the profile's `max_gap` between
//!   two mapped addresses read as 0, anything else → 0x02.
//! * Writes must target whole tags that are writable (holding registers, coils); a
//!   read-only or unmapped address → 0x02, a partial multi-register tag or a value outside
//!   the tag's valid range (or a text tag) → 0x03. Multi-writes are all-or-nothing.
//! * Failures: silent → no response; exception → that code for every request; slow → the
//!   response (or exception) after the delay.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use firmware_profiles::{DataType, RegisterType};
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use crate::clock::now_ms;
use crate::fleet::Fleet;

type Outcome = Result<Option<Response>, ExceptionCode>;

/// The future of one request: ready at once, or after a delay (slow-response failure).
#[derive(Debug)]
pub(crate) struct Reply {
    delay: Option<Pin<Box<tokio::time::Sleep>>>,
    outcome: Option<Outcome>,
}

impl Reply {
    fn new(outcome: Outcome, delay: Option<Duration>) -> Reply {
        Reply {
            delay: delay.map(|d| Box::pin(tokio::time::sleep(d))),
            outcome: Some(outcome),
        }
    }
}

impl Future for Reply {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = self.get_mut();
        if let Some(delay) = &mut this.delay {
            if delay.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.delay = None;
        }
        Poll::Ready(this.outcome.take().unwrap_or(Ok(None)))
    }
}

/// Serves the devices of one well on one TCP listener.
#[derive(Debug, Clone)]
pub(crate) struct WellService {
    pub fleet: Arc<Fleet>,
    pub well: usize,
}

impl Service for WellService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Reply;

    fn call(&self, req: Self::Request) -> Reply {
        let well = &self.fleet.wells[self.well];
        match well.device_by_unit(req.slave, &self.fleet.devices) {
            Some(d) => answer(&self.fleet, d, &req.request),
            None => Reply::new(Err(ExceptionCode::GatewayTargetDevice), None),
        }
    }
}

/// Serves one device on a serial line (RTU): answers only its own unit id.
#[derive(Debug, Clone)]
pub(crate) struct DeviceService {
    pub fleet: Arc<Fleet>,
    pub device: usize,
}

impl Service for DeviceService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Reply;

    fn call(&self, req: Self::Request) -> Reply {
        if req.slave != self.fleet.devices[self.device].unit_id {
            return Reply::new(Ok(None), None);
        }
        answer(&self.fleet, self.device, &req.request)
    }
}

/// Applies the device's communication failures around [`handle`].
fn answer(fleet: &Fleet, d: usize, request: &Request<'_>) -> Reply {
    let now = now_ms();
    let comm = fleet.comm_state(d, now);
    if comm.silent {
        return Reply::new(Ok(None), None);
    }
    let outcome = match comm.exception {
        Some(code) => Err(ExceptionCode::new(code)),
        None => handle(fleet, d, request, now).map(Some),
    };
    Reply::new(outcome, comm.delay)
}

/// Protocol maximum of registers per read (FC 3/4).
const MAX_READ_REGISTERS: u16 = 125;
/// Protocol maximum of bits per read (FC 1/2).
const MAX_READ_BITS: u16 = 2000;

/// Handles one request for device `d` at wall-clock `now`.
pub(crate) fn handle(
    fleet: &Fleet,
    d: usize,
    request: &Request<'_>,
    now: i64,
) -> Result<Response, ExceptionCode> {
    let device = &fleet.devices[d];
    let transport = &device.profile.transport;
    let max_regs = transport.max_registers_per_request.min(MAX_READ_REGISTERS);
    let max_bits = transport.max_bits_per_request.min(MAX_READ_BITS);
    let gap = transport.max_gap;
    let check = |n: u16, max: u16| {
        if n == 0 || n > max {
            Err(ExceptionCode::IllegalDataValue)
        } else {
            Ok(())
        }
    };
    match request {
        Request::ReadCoils(a, n) => {
            check(*n, max_bits)?;
            let plan = plan(fleet, d, RegisterType::Coil, *a, *n, gap)?;
            let image = fleet.image(d, now);
            Ok(Response::ReadCoils(pick(&plan, &image.coils, false)))
        }
        Request::ReadDiscreteInputs(a, n) => {
            check(*n, max_bits)?;
            let plan = plan(fleet, d, RegisterType::DiscreteInput, *a, *n, gap)?;
            let image = fleet.image(d, now);
            Ok(Response::ReadDiscreteInputs(pick(
                &plan,
                &image.discrete,
                false,
            )))
        }
        Request::ReadHoldingRegisters(a, n) => {
            check(*n, max_regs)?;
            let plan = plan(fleet, d, RegisterType::HoldingRegister, *a, *n, gap)?;
            let image = fleet.image(d, now);
            Ok(Response::ReadHoldingRegisters(pick(
                &plan,
                &image.holding,
                0,
            )))
        }
        Request::ReadInputRegisters(a, n) => {
            check(*n, max_regs)?;
            let plan = plan(fleet, d, RegisterType::InputRegister, *a, *n, gap)?;
            let image = fleet.image(d, now);
            Ok(Response::ReadInputRegisters(pick(&plan, &image.input, 0)))
        }
        Request::WriteSingleCoil(a, on) => {
            write_coils(fleet, d, *a, &[*on], now)?;
            Ok(Response::WriteSingleCoil(*a, *on))
        }
        Request::WriteMultipleCoils(a, bits) => {
            check(bits.len() as u16, 0x7B0)?;
            write_coils(fleet, d, *a, bits, now)?;
            Ok(Response::WriteMultipleCoils(*a, bits.len() as u16))
        }
        Request::WriteSingleRegister(a, word) => {
            write_registers(fleet, d, *a, &[*word], now)?;
            Ok(Response::WriteSingleRegister(*a, *word))
        }
        Request::WriteMultipleRegisters(a, words) => {
            check(words.len() as u16, 123)?;
            write_registers(fleet, d, *a, words, now)?;
            Ok(Response::WriteMultipleRegisters(*a, words.len() as u16))
        }
        _ => Err(ExceptionCode::IllegalFunction),
    }
}

fn plan(
    fleet: &Fleet,
    d: usize,
    table: RegisterType,
    start: u16,
    count: u16,
    max_gap: u16,
) -> Result<Vec<Option<usize>>, ExceptionCode> {
    fleet.devices[d]
        .layout
        .space(table)
        .plan(start, count, max_gap)
        .map_err(|()| ExceptionCode::IllegalDataAddress)
}

fn pick<T: Copy>(plan: &[Option<usize>], values: &[T], hole: T) -> Vec<T> {
    plan.iter().map(|s| s.map_or(hole, |i| values[i])).collect()
}

fn write_coils(
    fleet: &Fleet,
    d: usize,
    start: u16,
    bits: &[bool],
    now: i64,
) -> Result<(), ExceptionCode> {
    let device = &fleet.devices[d];
    let space = &device.layout.coils;
    let mut writes = Vec::with_capacity(bits.len());
    for (i, on) in bits.iter().enumerate() {
        let addr = u16::try_from(u32::from(start) + i as u32)
            .map_err(|_| ExceptionCode::IllegalDataAddress)?;
        let slot = space.find(addr).ok_or(ExceptionCode::IllegalDataAddress)?;
        let tag = space.slots[slot][0].0;
        if !device.profile.tags[tag].writable {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        writes.push((tag, f64::from(u8::from(*on))));
    }
    fleet.write(d, now, &writes);
    Ok(())
}

/// Decodes a register write into `(tag, engineering value)` pairs; all or nothing.
fn write_registers(
    fleet: &Fleet,
    d: usize,
    start: u16,
    words: &[u16],
    now: i64,
) -> Result<(), ExceptionCode> {
    let device = &fleet.devices[d];
    let space = &device.layout.holding;
    let end = u32::from(start) + words.len() as u32;
    if end > 0x1_0000 {
        return Err(ExceptionCode::IllegalDataAddress);
    }
    // Every written address must be mapped to writable tags only.
    let mut tags: Vec<usize> = Vec::new();
    for addr in u32::from(start)..end {
        let slot = space
            .find(addr as u16)
            .ok_or(ExceptionCode::IllegalDataAddress)?;
        for (tag, _) in &space.slots[slot] {
            if !device.profile.tags[*tag].writable {
                return Err(ExceptionCode::IllegalDataAddress);
            }
            if !tags.contains(tag) {
                tags.push(*tag);
            }
        }
    }
    let mut writes = Vec::with_capacity(tags.len());
    for tag_index in tags {
        let tag = &device.profile.tags[tag_index];
        let (first, last) = tag.address_range();
        if u32::from(first) < u32::from(start) || u32::from(last) >= end {
            return Err(ExceptionCode::IllegalDataValue);
        }
        let offset = usize::from(first - start);
        let regs = &words[offset..offset + usize::from(tag.register_count())];
        let raw = match tag.data_type {
            DataType::String { .. } => return Err(ExceptionCode::IllegalDataValue),
            _ => tag
                .decode(regs)
                .map_err(|_| ExceptionCode::IllegalDataValue)?,
        };
        let eng = tag
            .to_engineering(&raw)
            .filter(|e| tag.in_valid_range(*e))
            .ok_or(ExceptionCode::IllegalDataValue)?;
        writes.push((tag_index, eng));
    }
    fleet.write(d, now, &writes);
    Ok(())
}
