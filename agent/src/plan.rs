//! Read planning: turning a profile's tags into as few Modbus read requests as the device
//! allows.
//!
//! Every Modbus round trip costs a request/response turnaround (milliseconds on TCP, tens of
//! milliseconds on a 9600-baud serial line), so the poller never reads tag by tag. For each
//! poll group and each register space (coils, discrete inputs, input registers, holding
//! registers) the tags are sorted by address and merged greedily into requests:
//!
//! * a tag joins the current request when the hole between the request's end and the tag's
//!   first register is at most the profile's `max_gap` (reading a few unmapped registers is
//!   cheaper than another round trip) and the request stays within the device's limit
//!   (`max_registers_per_request` for register spaces, `max_bits_per_request` for bit
//!   spaces, both capped at the protocol maxima of 125 registers / 2000 bits);
//! * otherwise a new request starts at the tag.
//!
//! For non-overlapping tags sorted greedy merging is optimal (interval cover with bounded
//! length and bounded holes); overlapping tags (several `Bit` tags of one register, a 32-bit
//! value and its 16-bit halves) are handled by tracking the furthest end reached.
//!
//! Invariants (checked by the property tests): every tag is in exactly one request, its
//! registers lie inside that request, no request exceeds the limit, and no request spans a
//! hole of more than `max_gap` unmapped registers.
//!
//! String tags are device information (serial number, firmware version); they are planned
//! separately ([`DevicePlan::info`]) and read once per session rather than every poll.
//!
//! Some devices reject reads that touch unmapped registers (exception 2, illegal data
//! address). [`ReadRequest::split_at_gaps`] gives the same tags without any bridging so the
//! poller can fall back for that request only.

use std::time::Duration;

use firmware_profiles::{DataType, Profile, RegisterType};

/// Protocol maximum of registers in one read (function codes 3 and 4).
pub const PROTOCOL_MAX_REGISTERS: u16 = 125;
/// Protocol maximum of bits in one read (function codes 1 and 2).
pub const PROTOCOL_MAX_BITS: u16 = 2000;

/// Errors planning a device's reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A single tag needs more registers than one request may carry.
    #[error("tag {tag:?} needs {len} registers but the device allows {max} per request")]
    TagTooLarge {
        /// Tag name.
        tag: String,
        /// Registers (or bits) the tag needs.
        len: u16,
        /// The request limit.
        max: u16,
    },
    /// A tag runs past register 65535.
    #[error("tag {tag:?} at address {address} with {len} registers runs past address 65535")]
    AddressOverflow {
        /// Tag name.
        tag: String,
        /// First address.
        address: u16,
        /// Registers needed.
        len: u16,
    },
    /// The profile allows zero registers or bits per request.
    #[error("the profile allows 0 {0} per request")]
    ZeroLimit(&'static str),
    /// More tags than metric aliases can address.
    #[error("the profile has more than 65535 tags")]
    TooManyTags,
}

/// The four Modbus data spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Space {
    /// Read/write bits (function 1).
    Coils,
    /// Read-only bits (function 2).
    DiscreteInputs,
    /// Read-only registers (function 4).
    InputRegisters,
    /// Read/write registers (function 3).
    HoldingRegisters,
}

impl Space {
    /// The space a profile register type lives in.
    pub fn of(register: RegisterType) -> Space {
        match register {
            RegisterType::Coil => Space::Coils,
            RegisterType::DiscreteInput => Space::DiscreteInputs,
            RegisterType::InputRegister => Space::InputRegisters,
            RegisterType::HoldingRegister => Space::HoldingRegisters,
        }
    }

    /// True for coils and discrete inputs (one bit per address).
    pub fn is_bits(self) -> bool {
        matches!(self, Space::Coils | Space::DiscreteInputs)
    }

    /// Short name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Space::Coils => "coils",
            Space::DiscreteInputs => "discrete_inputs",
            Space::InputRegisters => "input_registers",
            Space::HoldingRegisters => "holding_registers",
        }
    }
}

/// One tag's place inside a read request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Index of the tag in the profile (= metric alias).
    pub tag: u16,
    /// Offset of the tag's first register (or bit) from the request start.
    pub offset: u16,
    /// Number of registers (or bits) the tag occupies.
    pub len: u16,
}

/// One Modbus read and the tags it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// Data space read.
    pub space: Space,
    /// First address.
    pub start: u16,
    /// Number of registers (or bits).
    pub count: u16,
    /// Tags served, sorted by offset.
    pub slots: Vec<Slot>,
}

impl ReadRequest {
    /// The same tags as requests that bridge no unmapped registers at all (for devices that
    /// answer "illegal data address" to reads touching holes).
    pub fn split_at_gaps(&self) -> Vec<ReadRequest> {
        let items: Vec<Item> = self
            .slots
            .iter()
            .map(|s| Item {
                tag: s.tag,
                address: u32::from(self.start) + u32::from(s.offset),
                len: s.len,
            })
            .collect();
        coalesce(self.space, items, self.count, 0)
    }

    /// True when the request reads registers no tag uses.
    pub fn bridges_gaps(&self) -> bool {
        let mut covered = 0u32;
        for s in &self.slots {
            if u32::from(s.offset) > covered {
                return true;
            }
            covered = covered.max(u32::from(s.offset) + u32::from(s.len));
        }
        covered < u32::from(self.count)
    }
}

/// The reads of one poll group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPlan {
    /// Poll group name.
    pub name: String,
    /// Poll interval.
    pub interval: Duration,
    /// Requests, ordered by space then address.
    pub requests: Vec<ReadRequest>,
}

/// Everything the poller reads from one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePlan {
    /// Cyclic reads, one entry per poll group.
    pub groups: Vec<GroupPlan>,
    /// String information tags, read once per session.
    pub info: Vec<ReadRequest>,
}

impl DevicePlan {
    /// Total number of requests of one cycle of every group.
    pub fn request_count(&self) -> usize {
        self.groups.iter().map(|g| g.requests.len()).sum()
    }
}

/// Per-request limits of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Registers per request (input/holding).
    pub max_registers: u16,
    /// Bits per request (coils/discrete inputs).
    pub max_bits: u16,
    /// Unmapped registers (or bits) that may be read to merge two requests.
    pub max_gap: u16,
}

impl Limits {
    /// The profile's limits, capped at the protocol maxima.
    pub fn of(profile: &Profile) -> Result<Limits, PlanError> {
        let t = &profile.transport;
        if t.max_registers_per_request == 0 {
            return Err(PlanError::ZeroLimit("registers"));
        }
        if t.max_bits_per_request == 0 {
            return Err(PlanError::ZeroLimit("bits"));
        }
        Ok(Limits {
            max_registers: t.max_registers_per_request.min(PROTOCOL_MAX_REGISTERS),
            max_bits: t.max_bits_per_request.min(PROTOCOL_MAX_BITS),
            max_gap: t.max_gap,
        })
    }

    fn max_for(self, space: Space) -> u16 {
        if space.is_bits() {
            self.max_bits
        } else {
            self.max_registers
        }
    }
}

/// A tag to place: its alias, first address and length, in one space.
#[derive(Debug, Clone, Copy)]
struct Item {
    tag: u16,
    address: u32,
    len: u16,
}

impl Item {
    fn end(self) -> u32 {
        self.address + u32::from(self.len)
    }
}

/// A poll group and its interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollGroup {
    /// Group name as used by the profile's tags.
    pub name: String,
    /// Poll interval.
    pub interval: Duration,
}

/// Plans the reads of a device: its profile's tags grouped by the given poll groups
/// (tags of groups not listed are not polled; string tags go to [`DevicePlan::info`]).
pub fn plan_device(profile: &Profile, groups: &[PollGroup]) -> Result<DevicePlan, PlanError> {
    let limits = Limits::of(profile)?;
    if profile.tags.len() > usize::from(u16::MAX) + 1 {
        return Err(PlanError::TooManyTags);
    }
    let is_info = |dt: &DataType| matches!(dt, DataType::String { .. });
    let info = plan_tags(profile, limits, |t| is_info(&t.data_type))?;
    let groups = groups
        .iter()
        .map(|g| {
            let requests = plan_tags(profile, limits, |t| {
                !is_info(&t.data_type) && t.poll_group == g.name
            })?;
            Ok(GroupPlan {
                name: g.name.clone(),
                interval: g.interval,
                requests,
            })
        })
        .collect::<Result<_, PlanError>>()?;
    Ok(DevicePlan { groups, info })
}

/// Plans the profile tags selected by `select`, space by space.
fn plan_tags(
    profile: &Profile,
    limits: Limits,
    select: impl Fn(&firmware_profiles::Tag) -> bool,
) -> Result<Vec<ReadRequest>, PlanError> {
    let mut per_space: [Vec<Item>; 4] = Default::default();
    for (index, tag) in profile.tags.iter().enumerate() {
        if !select(tag) {
            continue;
        }
        let space = Space::of(tag.register);
        let len = tag.register_count();
        let item = Item {
            tag: u16::try_from(index).map_err(|_| PlanError::TooManyTags)?,
            address: u32::from(tag.address),
            len,
        };
        if item.end() > 0x1_0000 {
            return Err(PlanError::AddressOverflow {
                tag: tag.name.clone(),
                address: tag.address,
                len,
            });
        }
        let max = limits.max_for(space);
        if len > max {
            return Err(PlanError::TagTooLarge {
                tag: tag.name.clone(),
                len,
                max,
            });
        }
        per_space[space_index(space)].push(item);
    }
    let spaces = [
        Space::Coils,
        Space::DiscreteInputs,
        Space::InputRegisters,
        Space::HoldingRegisters,
    ];
    let mut requests = Vec::new();
    for (space, items) in spaces.into_iter().zip(per_space) {
        requests.extend(coalesce(
            space,
            items,
            limits.max_for(space),
            limits.max_gap,
        ));
    }
    Ok(requests)
}

fn space_index(space: Space) -> usize {
    match space {
        Space::Coils => 0,
        Space::DiscreteInputs => 1,
        Space::InputRegisters => 2,
        Space::HoldingRegisters => 3,
    }
}

/// Greedy merge of one space's items. Preconditions (checked by callers): every item fits
/// in `max` and ends at or before 65536.
fn coalesce(space: Space, mut items: Vec<Item>, max: u16, max_gap: u16) -> Vec<ReadRequest> {
    items.sort_by_key(|i| (i.address, i.len, i.tag));
    let mut requests: Vec<ReadRequest> = Vec::new();
    // End (exclusive) of the current request's covered registers.
    let mut end = 0u32;
    for item in items {
        let joins = requests.last().is_some_and(|current| {
            let start = u32::from(current.start);
            let gap = item.address.saturating_sub(end);
            let new_end = end.max(item.end());
            gap <= u32::from(max_gap) && new_end - start <= u32::from(max)
        });
        if joins {
            let current = requests.last_mut().expect("checked by joins");
            let start = u32::from(current.start);
            end = end.max(item.end());
            current.count = to_u16(end - start);
            current.slots.push(Slot {
                tag: item.tag,
                offset: to_u16(item.address - start),
                len: item.len,
            });
        } else {
            end = item.end();
            requests.push(ReadRequest {
                space,
                start: to_u16(item.address),
                count: item.len,
                slots: vec![Slot {
                    tag: item.tag,
                    offset: 0,
                    len: item.len,
                }],
            });
        }
    }
    requests
}

/// Narrows a value the planner has bounded to the u16 range.
fn to_u16(v: u32) -> u16 {
    u16::try_from(v).expect("planner keeps addresses and counts within u16")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(tag: u16, address: u32, len: u16) -> Item {
        Item { tag, address, len }
    }

    fn spans(requests: &[ReadRequest]) -> Vec<(u16, u16)> {
        requests.iter().map(|r| (r.start, r.count)).collect()
    }

    #[test]
    fn contiguous_tags_merge_into_one_request() {
        let items = vec![item(0, 100, 2), item(1, 102, 1), item(2, 103, 2)];
        let r = coalesce(Space::HoldingRegisters, items, 125, 0);
        assert_eq!(spans(&r), vec![(100, 5)]);
        assert_eq!(
            r[0].slots.iter().map(|s| s.offset).collect::<Vec<_>>(),
            [0, 2, 3]
        );
    }

    #[test]
    fn gaps_up_to_max_gap_are_bridged_and_larger_ones_split() {
        let items = vec![item(0, 0, 1), item(1, 4, 1), item(2, 20, 1)];
        let r = coalesce(Space::InputRegisters, items.clone(), 125, 3);
        assert_eq!(spans(&r), vec![(0, 5), (20, 1)]);
        let r = coalesce(Space::InputRegisters, items, 125, 2);
        assert_eq!(spans(&r), vec![(0, 1), (4, 1), (20, 1)]);
    }

    #[test]
    fn requests_split_at_the_device_limit() {
        let items: Vec<Item> = (0..10).map(|i| item(i, u32::from(i) * 2, 2)).collect();
        let r = coalesce(Space::HoldingRegisters, items, 6, 0);
        assert_eq!(spans(&r), vec![(0, 6), (6, 6), (12, 6), (18, 2)]);
    }

    #[test]
    fn overlapping_bit_tags_share_one_register() {
        let items = vec![item(0, 7, 1), item(1, 7, 1), item(2, 8, 2)];
        let r = coalesce(Space::HoldingRegisters, items, 125, 0);
        assert_eq!(spans(&r), vec![(7, 3)]);
        assert_eq!(r[0].slots.len(), 3);
    }

    #[test]
    fn split_at_gaps_removes_bridging_only() {
        let items = vec![item(0, 0, 2), item(1, 3, 1), item(2, 4, 1)];
        let r = coalesce(Space::HoldingRegisters, items, 125, 5);
        assert_eq!(spans(&r), vec![(0, 5)]);
        assert!(r[0].bridges_gaps());
        let split = r[0].split_at_gaps();
        assert_eq!(spans(&split), vec![(0, 2), (3, 2)]);
        assert!(split.iter().all(|s| !s.bridges_gaps()));
    }

    #[test]
    fn last_register_is_addressable() {
        let r = coalesce(Space::HoldingRegisters, vec![item(0, 65534, 2)], 125, 0);
        assert_eq!(spans(&r), vec![(65534, 2)]);
    }

    #[test]
    fn shipped_profiles_plan_every_tag_exactly_once() {
        for (id, _) in firmware_profiles::builtin() {
            let profile = firmware_profiles::builtin_profile(id).unwrap();
            let groups: Vec<PollGroup> = profile
                .poll_groups()
                .into_iter()
                .map(|name| PollGroup {
                    name: name.to_string(),
                    interval: Duration::from_secs(1),
                })
                .collect();
            let plan = plan_device(&profile, &groups).unwrap();
            let limits = Limits::of(&profile).unwrap();
            let mut seen = vec![0; profile.tags.len()];
            let all = plan
                .groups
                .iter()
                .flat_map(|g| &g.requests)
                .chain(&plan.info);
            for r in all {
                assert!(r.count <= limits.max_for(r.space), "{id}: {r:?}");
                for s in &r.slots {
                    let tag = &profile.tags[usize::from(s.tag)];
                    assert_eq!(Space::of(tag.register), r.space);
                    assert_eq!(r.start + s.offset, tag.address, "{id}/{}", tag.name);
                    seen[usize::from(s.tag)] += 1;
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{id}: {seen:?}");
            assert!(plan.request_count() < profile.tags.len(), "{id} coalesced");
        }
    }

    fn arb_items() -> impl Strategy<Value = Vec<Item>> {
        prop::collection::vec((0u32..400, 1u16..=4), 0..60).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (address, len))| item(i as u16, address, len))
                .collect()
        })
    }

    /// Non-overlapping tags separated by random holes.
    fn arb_disjoint_items() -> impl Strategy<Value = Vec<Item>> {
        prop::collection::vec((0u32..12, 1u16..=4), 0..60).prop_map(|v| {
            let mut address = 0;
            v.into_iter()
                .enumerate()
                .map(|(i, (hole, len))| {
                    address += hole;
                    let it = item(i as u16, address, len);
                    address += u32::from(len);
                    it
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn plan_invariants(items in arb_items(), max in 4u16..=125, max_gap in 0u16..=10) {
            let requests = coalesce(Space::HoldingRegisters, items.clone(), max, max_gap);
            // Every tag exactly once, inside its request.
            let mut seen = vec![0u32; items.len()];
            for r in &requests {
                prop_assert!(r.count <= max);
                for s in &r.slots {
                    seen[usize::from(s.tag)] += 1;
                    let it = items[usize::from(s.tag)];
                    prop_assert_eq!(u32::from(r.start) + u32::from(s.offset), it.address);
                    prop_assert!(s.offset + s.len <= r.count);
                }
                // No bridged hole larger than max_gap; request ends at a tag's end.
                let mut covered = 0u32;
                for s in &r.slots {
                    prop_assert!(u32::from(s.offset).saturating_sub(covered) <= u32::from(max_gap));
                    covered = covered.max(u32::from(s.offset + s.len));
                }
                prop_assert_eq!(covered, u32::from(r.count));
                prop_assert_eq!(r.slots[0].offset, 0);
            }
            prop_assert!(seen.iter().all(|&n| n == 1));
            // Splitting keeps every tag once and bridges nothing.
            for r in &requests {
                let split = r.split_at_gaps();
                let tags: usize = split.iter().map(|s| s.slots.len()).sum();
                prop_assert_eq!(tags, r.slots.len());
                prop_assert!(split.iter().all(|s| !s.bridges_gaps() && s.count <= max));
            }
        }

        #[test]
        fn larger_gap_allowance_never_adds_requests(items in arb_disjoint_items(), max in 4u16..=125, gap in 0u16..=8) {
            let tight = coalesce(Space::InputRegisters, items.clone(), max, gap).len();
            let loose = coalesce(Space::InputRegisters, items, max, gap + 1).len();
            prop_assert!(loose <= tight);
        }
    }
}
