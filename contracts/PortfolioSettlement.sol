// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {SettlementBase} from "./SettlementBase.sol";

/// @title Portfolio settlement: one record per interval for all of a Balance Responsible Party's meters.
/// @notice The second settlement mode beside `Settlement` (per meter), chosen at deploy by deploying this
/// contract instead. Per portfolio (e.g. a tenant) and interval, an oracle (a whitelisted reporter key)
/// records the portfolio's energy and the root of the interval's hash tree over every meter's window
/// (docs/trees.md); the BRP plans per portfolio; settle() charges the portfolio's |actual - planned| once
/// it exceeds a tolerance, as balancing markets do. When a meter's record is disputed, anyone can prove it
/// against the interval root with its audit path (`proveMeter`); a proven record is kept, and the meter's
/// chain head advances with the same formula as `Settlement`:
/// head = keccak256(abi.encode(prevHead, intervalStart, energyWh, fingerprint)), starting from zero,
/// over the meter's proven records in the order they are proven.
/// @dev Tree hashing (docs/trees.md): leaf = keccak256(0x00 || abi.encode(bytes32 meterKey, uint64 start,
/// int256 energyWh, bytes32 fingerprint, bytes32 chainHash)), node = keccak256(0x01 || left || right).
contract PortfolioSettlement is SettlementBase {
    /// Interval word of a portfolio: energy Wh as int64 (bits 0-63), planned Wh as int64 (bits 64-127),
    /// flags (bits 128-135). The plan usually creates the word and the record updates it (or vice versa).
    uint256 private constant RECORDED = 1;
    uint256 private constant PLANNED = 2;
    uint256 private constant SETTLED = 4;
    uint256 private constant WH_MASK = type(uint64).max;
    uint256 private constant FLAGS_SHIFT = 128;

    /// portfolio => interval start => root of the interval's tree.
    mapping(bytes32 => mapping(uint64 => bytes32)) public intervalRoot;
    /// portfolio => interval start => interval word (see above).
    mapping(bytes32 => mapping(uint64 => uint256)) private intervals;
    /// Sum of settled charges per portfolio, micro-EUR.
    mapping(bytes32 => uint256) public runningBalance;
    /// Per meter: the head over its proven records; its proven records (energy int64, fingerprint tag).
    mapping(bytes32 => bytes32) public chainHead;
    mapping(bytes32 => mapping(uint64 => uint256)) private proven;

    event PortfolioRecorded(
        bytes32 indexed portfolioId,
        uint64 intervalStart,
        int256 energyWh,
        bytes32 root,
        uint32 meterCount,
        bytes32 ledgerTxId
    );
    event PortfolioConflict(bytes32 indexed portfolioId, uint64 intervalStart, int256 energyWh, bytes32 root);
    event PlanSubmitted(bytes32 indexed portfolioId, uint64 intervalStart, int256 plannedWh);
    event Settled(
        bytes32 indexed portfolioId,
        uint64 intervalStart,
        int256 actualWh,
        int256 plannedWh,
        int256 imbalanceWh,
        uint256 chargeMicroEur
    );
    event MeterProven(
        bytes32 indexed meterId,
        bytes32 indexed portfolioId,
        uint64 intervalStart,
        int256 energyWh,
        bytes32 fingerprint,
        bytes32 chainHash
    );
    event MeterConflict(
        bytes32 indexed meterId, bytes32 indexed portfolioId, uint64 intervalStart, int256 energyWh, bytes32 fingerprint
    );
    error ZeroRoot();
    error EnergyOutOfRange(int256 energyWh);
    error AlreadySettled(bytes32 portfolioId, uint64 intervalStart);
    error NotRecorded(bytes32 portfolioId, uint64 intervalStart);
    error InvalidProof(bytes32 meterId, uint64 intervalStart);

    constructor(address reporter, address brp_, uint256 price, uint256 tolerance, uint64 intervalLength_)
        SettlementBase(reporter, brp_, price, tolerance, intervalLength_)
    {}

    // ----- recording (reporters) -----

    /// Record a portfolio's interval: its energy (sum of its meters' whole Wh) and its tree root. A second
    /// record with the same energy and root is a no-op; with different data it emits PortfolioConflict
    /// and keeps the first. Never overwrites. `ledgerTxId` (the root's BigchainDB transaction) and
    /// `meterCount` go to the event only.
    function recordPortfolio(
        bytes32 portfolioId,
        uint64 intervalStart,
        int256 energyWh,
        bytes32 root,
        uint32 meterCount,
        bytes32 ledgerTxId
    ) external {
        if (!isReporter[msg.sender]) revert NotReporter(msg.sender);
        _checkInterval(intervalStart);
        if (root == bytes32(0)) revert ZeroRoot();
        uint256 energy = _wh(energyWh);
        uint256 word = intervals[portfolioId][intervalStart];
        if ((word >> FLAGS_SHIFT) & RECORDED != 0) {
            if ((word & WH_MASK) != energy || intervalRoot[portfolioId][intervalStart] != root) {
                emit PortfolioConflict(portfolioId, intervalStart, energyWh, root);
            }
            return;
        }
        intervalRoot[portfolioId][intervalStart] = root;
        intervals[portfolioId][intervalStart] = (word & ~WH_MASK) | energy | (RECORDED << FLAGS_SHIFT);
        emit PortfolioRecorded(portfolioId, intervalStart, energyWh, root, meterCount, ledgerTxId);
    }

    /// Reverts unless t is a multiple of the interval length.
    function _checkInterval(uint64 t) private view {
        if (t % intervalLength != 0) revert MisalignedInterval(t, intervalLength);
    }

    /// Wh as the low 64 bits of the word (two's complement int64); reverts outside int64.
    function _wh(int256 wh) private pure returns (uint256) {
        if (wh > type(int64).max || wh < type(int64).min) revert EnergyOutOfRange(wh);
        return uint256(uint64(int64(wh)));
    }

    // ----- plans (BRP) and settlement (anyone) -----

    /// Set the portfolio's planned Wh for several intervals; a plan can change until it is settled.
    function submitPlans(bytes32 portfolioId, uint64[] calldata intervalStarts, int256[] calldata plannedWh)
        external
    {
        if (msg.sender != brp) revert NotBrp(msg.sender);
        uint256 n = intervalStarts.length;
        if (plannedWh.length != n) revert LengthMismatch();
        for (uint256 i; i < n;) {
            _plan(portfolioId, intervalStarts[i], plannedWh[i]);
            unchecked {
                ++i;
            }
        }
    }

    function _plan(bytes32 portfolioId, uint64 t, int256 planned) private {
        _checkInterval(t);
        uint256 word = intervals[portfolioId][t];
        if ((word >> FLAGS_SHIFT) & SETTLED != 0) revert AlreadySettled(portfolioId, t);
        word = (word & ~(WH_MASK << 64)) | (_wh(planned) << 64) | (PLANNED << FLAGS_SHIFT);
        intervals[portfolioId][t] = word;
        emit PlanSubmitted(portfolioId, t, planned);
    }

    /// Settle every listed interval of the portfolio that has a record and a plan and is not settled
    /// yet; others are skipped, so anyone may call this repeatedly.
    function settle(bytes32 portfolioId, uint64[] calldata intervalStarts) external {
        uint256 n = intervalStarts.length;
        for (uint256 i; i < n;) {
            _settle(portfolioId, intervalStarts[i]);
            unchecked {
                ++i;
            }
        }
    }

    function _settle(bytes32 portfolioId, uint64 t) private {
        uint256 word = intervals[portfolioId][t];
        if ((word >> FLAGS_SHIFT) & (RECORDED | PLANNED | SETTLED) != (RECORDED | PLANNED)) return;
        intervals[portfolioId][t] = word | (SETTLED << FLAGS_SHIFT);
        int256 actual = int64(uint64(word));
        int256 planned = int64(uint64(word >> 64));
        int256 imbalance = actual - planned;
        uint256 charge = chargeFor(imbalance);
        runningBalance[portfolioId] += charge;
        emit Settled(portfolioId, t, actual, planned, imbalance, charge);
    }

    // ----- disputes (anyone) -----

    /// Prove one meter's window record against the portfolio's interval root. `proof` holds the sibling
    /// hashes bottom-up; bit i of `leftBits` is set when sibling i is on the left. Reverts with
    /// InvalidProof unless the leaf leads to the root. The first proof of a (meter, interval) keeps the
    /// record and advances the meter's chain head; proving it again is a no-op, and proving other data for it
    /// (the meter in another portfolio's tree) emits MeterConflict and keeps the first.
    function proveMeter(
        bytes32 portfolioId,
        uint64 intervalStart,
        bytes32 meterId,
        int256 energyWh,
        bytes32 fingerprint,
        bytes32 chainHash,
        bytes32[] calldata proof,
        uint256 leftBits
    ) external {
        bytes32 root = intervalRoot[portfolioId][intervalStart];
        if (root == bytes32(0)) revert NotRecorded(portfolioId, intervalStart);
        bytes32 h = _leaf(meterId, intervalStart, energyWh, fingerprint, chainHash);
        if (_climb(h, proof, leftBits) != root) revert InvalidProof(meterId, intervalStart);
        uint256 lane = _wh(energyWh) | (uint256(fingerprint >> 192) << 64) | (1 << 128);
        uint256 seen = proven[meterId][intervalStart];
        if (seen != 0) {
            if (seen != lane) emit MeterConflict(meterId, portfolioId, intervalStart, energyWh, fingerprint);
            return;
        }
        proven[meterId][intervalStart] = lane;
        chainHead[meterId] = _link(chainHead[meterId], intervalStart, energyWh, fingerprint);
        emit MeterProven(meterId, portfolioId, intervalStart, energyWh, fingerprint, chainHash);
    }

    /// keccak256(0x00 || abi.encode(meterId, t, energy, fp, chainHash)) in scratch memory.
    function _leaf(bytes32 meterId, uint64 t, int256 energy, bytes32 fp, bytes32 chainHash)
        private
        pure
        returns (bytes32 h)
    {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore8(p, 0)
            mstore(add(p, 0x01), meterId)
            mstore(add(p, 0x21), t)
            mstore(add(p, 0x41), energy)
            mstore(add(p, 0x61), fp)
            mstore(add(p, 0x81), chainHash)
            h := keccak256(p, 0xa1)
        }
    }

    /// The root reached from `h` along the audit path: keccak256(0x01 || left || right) per level.
    function _climb(bytes32 h, bytes32[] calldata proof, uint256 leftBits) private pure returns (bytes32) {
        uint256 n = proof.length;
        for (uint256 i; i < n;) {
            bytes32 sibling = proof[i];
            bool left = (leftBits >> i) & 1 == 1;
            assembly ("memory-safe") {
                let p := mload(0x40)
                mstore8(p, 1)
                switch left
                case 0 {
                    mstore(add(p, 0x01), h)
                    mstore(add(p, 0x21), sibling)
                }
                default {
                    mstore(add(p, 0x01), sibling)
                    mstore(add(p, 0x21), h)
                }
                h := keccak256(p, 0x41)
            }
            unchecked {
                ++i;
            }
        }
        return h;
    }

    // ----- views -----

    /// A portfolio's interval: recorded?, energy, root, planned?, planned Wh, settled?.
    function intervalOf(bytes32 portfolioId, uint64 intervalStart)
        external
        view
        returns (bool recorded, int256 energyWh, bytes32 root, bool planned, int256 plannedWh, bool settled)
    {
        uint256 word = intervals[portfolioId][intervalStart];
        uint256 flags = word >> FLAGS_SHIFT;
        return (
            flags & RECORDED != 0,
            int64(uint64(word)),
            intervalRoot[portfolioId][intervalStart],
            flags & PLANNED != 0,
            int64(uint64(word >> 64)),
            flags & SETTLED != 0
        );
    }

    /// Whether a meter's record of an interval was proven, its energy and 64-bit fingerprint tag.
    function recordOf(bytes32 meterId, uint64 intervalStart)
        external
        view
        returns (bool exists, int256 energyWh, bytes8 fingerprintTag)
    {
        uint256 lane = proven[meterId][intervalStart];
        return (lane != 0, int64(uint64(lane)), bytes8(uint64(lane >> 64)));
    }

    /// actual - planned of a portfolio's interval and its charge; known is false until both exist.
    function imbalanceOf(bytes32 portfolioId, uint64 intervalStart)
        external
        view
        returns (bool known, int256 imbalanceWh, uint256 chargeMicroEur)
    {
        uint256 word = intervals[portfolioId][intervalStart];
        if ((word >> FLAGS_SHIFT) & (RECORDED | PLANNED) != (RECORDED | PLANNED)) return (false, 0, 0);
        imbalanceWh = int256(int64(uint64(word))) - int256(int64(uint64(word >> 64)));
        return (true, imbalanceWh, chargeFor(imbalanceWh));
    }
}
