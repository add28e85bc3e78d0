// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Settlement of metered energy against a Balance Responsible Party's plans.
/// @notice An oracle (a whitelisted reporter key) records one batch of 15-minute window summaries per
/// interval. Per meter the contract keeps a hash chain head (Algorithm 2 of Pop et al. 2019, on chain):
/// head = keccak256(abi.encode(prevHead, intervalStart, energyWh, fingerprint)), starting from zero.
/// The BRP submits planned energy; settle() charges |actual - planned| at a price once it exceeds a
/// tolerance, and adds the charge to the meter's running balance.
/// @dev Gas: ids are bytes32; what only off-chain readers need (ledger tx id, full fingerprint) goes to
/// events; storage holds only what the contract reads: one slot per (meter, interval) holding plan and
/// record together, one chain head per meter, and a running balance per meter.
contract Settlement {
    /// Everything the contract reads about one (meter, interval) is packed in one word: planned Wh (bits
    /// 0-63), recorded Wh (64-127), flags (128-135) and a 120-bit tag of the fingerprint (136-255) that
    /// tells an identical resend (no-op) from conflicting data (error event). Plan and record share the
    /// word, so a plan submitted ahead turns the record's write into a cheap non-zero update. Packed by
    /// hand, not as a struct, so the loop neither re-reads the slot per field nor allocates memory per meter.
    /// The full fingerprint and the ledger tx id only go to events.
    uint8 private constant RECORDED = 1;
    uint8 private constant PLANNED = 2;
    uint8 private constant SETTLED = 4;

    address public owner;
    address public brp;
    /// Price in micro-EUR per kWh (0.2 EUR/kWh = 200000).
    uint256 public priceMicroEurPerKwh;
    /// |imbalance| up to this many Wh is not charged.
    uint256 public toleranceWh;

    mapping(address => bool) public isReporter;
    mapping(bytes32 => bytes32) public chainHead;
    mapping(bytes32 => mapping(uint64 => uint256)) private intervals;
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
    event ReporterSet(address indexed reporter, bool allowed);
    event BrpSet(address indexed brp);
    event ParamsSet(uint256 priceMicroEurPerKwh, uint256 toleranceWh);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    error NotOwner(address caller);
    error NotReporter(address caller);
    error NotBrp(address caller);
    error LengthMismatch();
    error ZeroAddress();
    error EmptyFingerprint(bytes32 meterId);
    error EnergyOutOfRange(bytes32 meterId, int256 energyWh);
    error AlreadySettled(bytes32 meterId, uint64 intervalStart);

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    constructor(address reporter, address brp_, uint256 price, uint256 tolerance) {
        if (reporter == address(0) || brp_ == address(0)) revert ZeroAddress();
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
        isReporter[reporter] = true;
        emit ReporterSet(reporter, true);
        brp = brp_;
        emit BrpSet(brp_);
        priceMicroEurPerKwh = price;
        toleranceWh = tolerance;
        emit ParamsSet(price, tolerance);
    }

    // ----- roles and parameters (owner) -----

    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    /// Add or remove an oracle key; rotation is add-new then remove-old.
    function setReporter(address reporter, bool allowed) external onlyOwner {
        if (reporter == address(0)) revert ZeroAddress();
        isReporter[reporter] = allowed;
        emit ReporterSet(reporter, allowed);
    }

    function setBrp(address brp_) external onlyOwner {
        if (brp_ == address(0)) revert ZeroAddress();
        brp = brp_;
        emit BrpSet(brp_);
    }

    function setParams(uint256 price, uint256 tolerance) external onlyOwner {
        priceMicroEurPerKwh = price;
        toleranceWh = tolerance;
        emit ParamsSet(price, tolerance);
    }

    // ----- recording (reporters) -----

    /// Record one interval for a batch of meters. A (meter, interval) already recorded with the same
    /// energy and fingerprint is skipped silently; with different data it emits RecordConflict and keeps
    /// the first record. Never overwrites.
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
        for (uint256 i; i < n;) {
            _record(intervalStart, meterIds[i], energyWh[i], fingerprints[i], ledgerTxIds[i]);
            unchecked {
                ++i;
            }
        }
    }

    function _record(uint64 t, bytes32 meter, int256 energy, bytes32 fp, bytes32 ledgerTx) private {
        if (energy > type(int64).max || energy < type(int64).min) revert EnergyOutOfRange(meter, energy);
        uint120 tag = uint120(uint256(fp) >> 136);
        if (tag == 0) revert EmptyFingerprint(meter);
        (int64 planned, int64 seenWh, uint8 flags, uint120 seenTag) = _unpack(intervals[meter][t]);
        if (flags & RECORDED != 0) {
            if (seenTag != tag || seenWh != int64(energy)) emit RecordConflict(meter, t, energy, fp);
            return;
        }
        intervals[meter][t] = _pack(planned, int64(energy), flags | RECORDED, tag);
        chainHead[meter] = _link(chainHead[meter], t, energy, fp);
        emit IntervalRecorded(meter, t, energy, fp, ledgerTx);
    }

    function _pack(int64 planned, int64 energy, uint8 flags, uint120 tag) private pure returns (uint256) {
        return uint256(uint64(planned)) | (uint256(uint64(energy)) << 64) | (uint256(flags) << 128)
            | (uint256(tag) << 136);
    }

    function _unpack(uint256 word) private pure returns (int64 planned, int64 energy, uint8 flags, uint120 tag) {
        return (int64(uint64(word)), int64(uint64(word >> 64)), uint8(word >> 128), uint120(word >> 136));
    }

    /// keccak256(abi.encode(prev, t, energy, fp)) hashed in scratch memory (no allocation per meter).
    function _link(bytes32 prev, uint64 t, int256 energy, bytes32 fp) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, prev)
            mstore(add(p, 0x20), t)
            mstore(add(p, 0x40), energy)
            mstore(add(p, 0x60), fp)
            h := keccak256(p, 0x80)
        }
    }

    // ----- plans (BRP) and settlement (anyone) -----

    /// Set planned Wh per meter for one interval; a plan can change until its interval is settled.
    function submitPlans(uint64 intervalStart, bytes32[] calldata meterIds, int256[] calldata plannedWh) external {
        if (msg.sender != brp) revert NotBrp(msg.sender);
        uint256 n = meterIds.length;
        if (plannedWh.length != n) revert LengthMismatch();
        for (uint256 i; i < n;) {
            _plan(meterIds[i], intervalStart, plannedWh[i]);
            unchecked {
                ++i;
            }
        }
    }

    function _plan(bytes32 meter, uint64 t, int256 planned) private {
        if (planned > type(int64).max || planned < type(int64).min) revert EnergyOutOfRange(meter, planned);
        (, int64 energy, uint8 flags, uint120 tag) = _unpack(intervals[meter][t]);
        if (flags & SETTLED != 0) revert AlreadySettled(meter, t);
        intervals[meter][t] = _pack(int64(planned), energy, flags | PLANNED, tag);
        emit PlanSubmitted(meter, t, planned);
    }

    /// Settle every listed meter of the interval that has a record and a plan and is not settled yet;
    /// others are skipped, so anyone may call this repeatedly.
    function settle(uint64 intervalStart, bytes32[] calldata meterIds) external {
        uint256 n = meterIds.length;
        for (uint256 i; i < n;) {
            _settle(meterIds[i], intervalStart);
            unchecked {
                ++i;
            }
        }
    }

    function _settle(bytes32 meter, uint64 t) private {
        (int64 planned, int64 energy, uint8 flags, uint120 tag) = _unpack(intervals[meter][t]);
        if (flags & (RECORDED | PLANNED | SETTLED) != RECORDED | PLANNED) return;
        intervals[meter][t] = _pack(planned, energy, flags | SETTLED, tag);
        int256 imbalance = int256(energy) - int256(planned);
        uint256 charge = chargeFor(imbalance);
        runningBalance[meter] += charge;
        emit Settled(meter, t, energy, planned, imbalance, charge);
    }

    // ----- views -----

    /// The charge in micro-EUR for an imbalance: |imbalance| * price / 1000 (rounded down) once
    /// |imbalance| exceeds the tolerance, else zero.
    function chargeFor(int256 imbalanceWh) public view returns (uint256) {
        uint256 magnitude = imbalanceWh < 0 ? uint256(-imbalanceWh) : uint256(imbalanceWh);
        if (magnitude <= toleranceWh) return 0;
        return magnitude * priceMicroEurPerKwh / 1000;
    }

    function recordOf(bytes32 meterId, uint64 intervalStart)
        external
        view
        returns (bool exists, int256 energyWh, bytes15 fingerprintTag)
    {
        (, int64 energy, uint8 flags, uint120 tag) = _unpack(intervals[meterId][intervalStart]);
        return (flags & RECORDED != 0, energy, bytes15(tag));
    }

    function planOf(bytes32 meterId, uint64 intervalStart)
        external
        view
        returns (bool exists, int256 plannedWh, bool settled)
    {
        (int64 planned,, uint8 flags,) = _unpack(intervals[meterId][intervalStart]);
        return (flags & PLANNED != 0, planned, flags & SETTLED != 0);
    }

    /// actual - planned (negative: consumption above plan) and its charge; known is false until both
    /// the record and the plan exist.
    function imbalanceOf(bytes32 meterId, uint64 intervalStart)
        external
        view
        returns (bool known, int256 imbalanceWh, uint256 chargeMicroEur)
    {
        (int64 planned, int64 energy, uint8 flags,) = _unpack(intervals[meterId][intervalStart]);
        if (flags & (RECORDED | PLANNED) != RECORDED | PLANNED) return (false, 0, 0);
        imbalanceWh = int256(energy) - int256(planned);
        return (true, imbalanceWh, chargeFor(imbalanceWh));
    }
}
