// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title What both settlement modes share: roles (owner, reporters, BRP), the price parameters, the
/// interval length, the charge formula and the meter chain link.
/// @notice `Settlement` (per meter) and `PortfolioSettlement` (per portfolio) inherit it. Its state comes
/// first in both storage layouts (owner, brp, priceMicroEurPerKwh, toleranceWh, isReporter).
abstract contract SettlementBase {
    /// Seconds per interval (the connector's window length); interval starts are multiples of it.
    uint64 public immutable intervalLength;
    address public owner;
    address public brp;
    /// Price in micro-EUR per kWh (0.2 EUR/kWh = 200000).
    uint256 public priceMicroEurPerKwh;
    /// |imbalance| up to this many Wh is not charged.
    uint256 public toleranceWh;

    mapping(address => bool) public isReporter;

    event ReporterSet(address indexed reporter, bool allowed);
    event BrpSet(address indexed brp);
    event ParamsSet(uint256 priceMicroEurPerKwh, uint256 toleranceWh);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    error NotOwner(address caller);
    error NotReporter(address caller);
    error NotBrp(address caller);
    error LengthMismatch();
    error ZeroAddress();
    error ZeroIntervalLength();
    error MisalignedInterval(uint64 intervalStart, uint64 intervalLength);

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    constructor(address reporter, address brp_, uint256 price, uint256 tolerance, uint64 intervalLength_) {
        if (reporter == address(0) || brp_ == address(0)) revert ZeroAddress();
        if (intervalLength_ == 0) revert ZeroIntervalLength();
        intervalLength = intervalLength_;
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

    // ----- views -----

    /// The charge in micro-EUR for an imbalance: |imbalance| * price / 1000 (rounded down) once
    /// |imbalance| exceeds the tolerance, else zero.
    function chargeFor(int256 imbalanceWh) public view returns (uint256) {
        uint256 magnitude = imbalanceWh < 0 ? uint256(-imbalanceWh) : uint256(imbalanceWh);
        if (magnitude <= toleranceWh) return 0;
        return magnitude * priceMicroEurPerKwh / 1000;
    }

    /// A meter's chain link keccak256(abi.encode(prev, t, energy, fp)), hashed in scratch memory (no
    /// allocation per meter).
    function _link(bytes32 prev, uint64 t, int256 energy, bytes32 fp) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, prev)
            mstore(add(p, 0x20), t)
            mstore(add(p, 0x40), energy)
            mstore(add(p, 0x60), fp)
            h := keccak256(p, 0x80)
        }
    }
}
