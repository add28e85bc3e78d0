// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {SettlementBase} from "./SettlementBase.sol";

/// @title Settlement of metered energy against a Balance Responsible Party's plans.
/// @notice An oracle (a whitelisted reporter key) records one batch of 15-minute window summaries per
/// interval. Per meter the contract keeps a hash chain head (Algorithm 2 of Pop et al. 2019, on chain):
/// head = keccak256(abi.encode(prevHead, intervalStart, energyWh, fingerprint)), starting from zero.
/// The BRP submits planned energy; settle() charges |actual - planned| at a price once it exceeds a
/// tolerance, and adds the charge to the meter's running balance.
/// @dev Gas: ids are bytes32; what only off-chain readers need (ledger tx id, full fingerprint) goes to
/// events; storage holds only what the contract reads. Records and plans of two consecutive intervals
/// share a storage word (one word of records, one of plans, per meter and pair of intervals), so only
/// every second record (or plan) of a meter creates a word (22,100 gas) and the other updates it (5,000).
/// The pairs of a meter with an odd id start one interval later than those of a meter with an even id, so
/// in a batch of many meters about half create a word and half update one, in every interval alike.
contract Settlement is SettlementBase {
    /// A record lane (128 bits, two per word): energy Wh as int64 (bits 0-63) and a 64-bit tag of the
    /// fingerprint (its top 64 bits, never zero; bits 64-127) that tells an identical resend (no-op) from
    /// conflicting data (error event). A lane is recorded iff its tag is non-zero.
    /// A plan lane (128 bits, two per word): planned Wh as int64 (bits 0-63) and flags (bits 64-71).
    /// With k = t / intervalLength + (meter id's lowest bit), interval t of a meter is lane k % 2 of the
    /// word with key k / 2.
    /// Packed by hand, not as structs, so the loop neither re-reads a slot per field nor allocates memory.
    uint256 private constant PLANNED = 1;
    uint256 private constant SETTLED = 2;
    uint256 private constant LANE_MASK = type(uint128).max;

    mapping(bytes32 => bytes32) public chainHead;
    /// meter => word key (see above) => two record lanes.
    mapping(bytes32 => mapping(uint256 => uint256)) private records;
    /// meter => word key => two plan lanes.
    mapping(bytes32 => mapping(uint256 => uint256)) private plans;
    /// Sum of settled charges per meter, micro-EUR.
    mapping(bytes32 => uint256) public runningBalance;

    event IntervalRecorded(
        bytes32 indexed meterId, uint64 intervalStart, int256 energyWh, bytes32 fingerprint, bytes32 ledgerTxId
    );
    event RecordConflict(bytes32 indexed meterId, uint64 intervalStart, int256 energyWh, bytes32 fingerprint);
    event PlanSubmitted(bytes32 indexed meterId, uint64 intervalStart, int256 plannedWh);
    event Settled(
        bytes32 indexed meterId,
        uint64 intervalStart,
        int256 actualWh,
        int256 plannedWh,
        int256 imbalanceWh,
        uint256 chargeMicroEur
    );
    error EmptyFingerprint(bytes32 meterId);
    error EnergyOutOfRange(bytes32 meterId, int256 energyWh);
    error AlreadySettled(bytes32 meterId, uint64 intervalStart);

    constructor(address reporter, address brp_, uint256 price, uint256 tolerance, uint64 intervalLength_)
        SettlementBase(reporter, brp_, price, tolerance, intervalLength_)
    {}

    // ----- recording (reporters) -----

    /// Record one interval for a batch of meters. A (meter, interval) already recorded with the same
    /// energy and fingerprint tag is skipped silently; with different data it emits RecordConflict and
    /// keeps the first record. Never overwrites.
    function recordIntervals(
        uint64 intervalStart,
        bytes32[] calldata meterIds,
        int256[] calldata energyWh,
        bytes32[] calldata fingerprints,
        bytes32[] calldata ledgerTxIds
    ) external {
        if (!isReporter[msg.sender]) revert NotReporter(msg.sender);
        uint256 n = meterIds.length;
        if (energyWh.length != n || fingerprints.length != n || ledgerTxIds.length != n) revert LengthMismatch();
        uint256 index = _index(intervalStart);
        for (uint256 i; i < n;) {
            _record(intervalStart, index, meterIds[i], energyWh[i], fingerprints[i], ledgerTxIds[i]);
            unchecked {
                ++i;
            }
        }
    }

    function _record(uint64 t, uint256 index, bytes32 meter, int256 energy, bytes32 fp, bytes32 ledgerTx) private {
        if (energy > type(int64).max || energy < type(int64).min) revert EnergyOutOfRange(meter, energy);
        uint256 tag = uint256(fp) >> 192;
        if (tag == 0) revert EmptyFingerprint(meter);
        uint256 lane = uint256(uint64(int64(energy))) | (tag << 64);
        (uint256 key, uint256 shift) = _word(index, meter);
        uint256 word = records[meter][key];
        uint256 seen = (word >> shift) & LANE_MASK;
        if (seen != 0) {
            if (seen != lane) emit RecordConflict(meter, t, energy, fp);
            return;
        }
        records[meter][key] = word | (lane << shift);
        chainHead[meter] = _link(chainHead[meter], t, energy, fp);
        emit IntervalRecorded(meter, t, energy, fp, ledgerTx);
    }

    /// t / intervalLength; reverts unless t is a multiple of the interval length.
    function _index(uint64 t) private view returns (uint256 index) {
        index = t / intervalLength;
        if (index * intervalLength != t) revert MisalignedInterval(t, intervalLength);
    }

    /// The key of the word holding interval `index` of `meter`, and the bit offset of its lane.
    function _word(uint256 index, bytes32 meter) private pure returns (uint256 key, uint256 shift) {
        uint256 k = index + (uint256(meter) & 1);
        return (k >> 1, (k & 1) << 7);
    }

    // ----- plans (BRP) and settlement (anyone) -----

    /// Set planned Wh per meter for one interval; a plan can change until its interval is settled.
    function submitPlans(uint64 intervalStart, bytes32[] calldata meterIds, int256[] calldata plannedWh) external {
        if (msg.sender != brp) revert NotBrp(msg.sender);
        uint256 n = meterIds.length;
        if (plannedWh.length != n) revert LengthMismatch();
        uint256 index = _index(intervalStart);
        for (uint256 i; i < n;) {
            _plan(meterIds[i], intervalStart, index, plannedWh[i]);
            unchecked {
                ++i;
            }
        }
    }

    function _plan(bytes32 meter, uint64 t, uint256 index, int256 planned) private {
        if (planned > type(int64).max || planned < type(int64).min) revert EnergyOutOfRange(meter, planned);
        (uint256 key, uint256 shift) = _word(index, meter);
        uint256 word = plans[meter][key];
        if ((word >> shift >> 64) & SETTLED != 0) revert AlreadySettled(meter, t);
        uint256 lane = uint256(uint64(int64(planned))) | (PLANNED << 64);
        plans[meter][key] = (word & ~(LANE_MASK << shift)) | (lane << shift);
        emit PlanSubmitted(meter, t, planned);
    }

    /// Settle every listed meter of the interval that has a record and a plan and is not settled yet;
    /// others are skipped, so anyone may call this repeatedly.
    function settle(uint64 intervalStart, bytes32[] calldata meterIds) external {
        uint256 index = _index(intervalStart);
        uint256 n = meterIds.length;
        for (uint256 i; i < n;) {
            _settle(meterIds[i], intervalStart, index);
            unchecked {
                ++i;
            }
        }
    }

    function _settle(bytes32 meter, uint64 t, uint256 index) private {
        (uint256 key, uint256 shift) = _word(index, meter);
        uint256 planWord = plans[meter][key];
        uint256 plan = (planWord >> shift) & LANE_MASK;
        if ((plan >> 64) & (PLANNED | SETTLED) != PLANNED) return;
        uint256 record = (records[meter][key] >> shift) & LANE_MASK;
        if (record == 0) return;
        plans[meter][key] = planWord | ((SETTLED << 64) << shift);
        int256 energy = int64(uint64(record));
        int256 planned = int64(uint64(plan));
        int256 imbalance = energy - planned;
        uint256 charge = chargeFor(imbalance);
        runningBalance[meter] += charge;
        emit Settled(meter, t, energy, planned, imbalance, charge);
    }

    // ----- views -----

    /// Whether (meter, interval) is recorded, its energy and the 64-bit fingerprint tag kept on chain.
    function recordOf(bytes32 meterId, uint64 intervalStart)
        external
        view
        returns (bool exists, int256 energyWh, bytes8 fingerprintTag)
    {
        (uint256 key, uint256 shift) = _word(_index(intervalStart), meterId);
        uint256 lane = (records[meterId][key] >> shift) & LANE_MASK;
        return (lane != 0, int64(uint64(lane)), bytes8(uint64(lane >> 64)));
    }

    function planOf(bytes32 meterId, uint64 intervalStart)
        external
        view
        returns (bool exists, int256 plannedWh, bool settled)
    {
        (uint256 key, uint256 shift) = _word(_index(intervalStart), meterId);
        uint256 lane = (plans[meterId][key] >> shift) & LANE_MASK;
        return ((lane >> 64) & PLANNED != 0, int64(uint64(lane)), (lane >> 64) & SETTLED != 0);
    }

    /// actual - planned (negative: consumption above plan) and its charge; known is false until both
    /// the record and the plan exist.
    function imbalanceOf(bytes32 meterId, uint64 intervalStart)
        external
        view
        returns (bool known, int256 imbalanceWh, uint256 chargeMicroEur)
    {
        (uint256 key, uint256 shift) = _word(_index(intervalStart), meterId);
        uint256 record = (records[meterId][key] >> shift) & LANE_MASK;
        uint256 plan = (plans[meterId][key] >> shift) & LANE_MASK;
        if (record == 0 || (plan >> 64) & PLANNED == 0) return (false, 0, 0);
        imbalanceWh = int256(int64(uint64(record))) - int256(int64(uint64(plan)));
        return (true, imbalanceWh, chargeFor(imbalanceWh));
    }
}
