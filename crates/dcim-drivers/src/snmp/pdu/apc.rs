//! APC rack PDUs (PowerNet-MIB). Two generations of the MIB switch outlets:
//! `apc_rpdu` uses the rPDU tables of the AP78xx/AP79xx switched rack PDUs
//! (rPDUOutletControlOutletCommand to switch, rPDUOutletStatusOutletState to read);
//! `apc_masterswitch` the older sPDU tables that MasterSwitch units and early rack
//! PDUs have (sPDUOutletCtl both switches and reads). Many rack PDUs answer both.

use super::OutletMib;

/// rPDUOutletStatusTable / rPDUOutletControlTable (PowerNet-MIB 1.3.6.1.4.1.318.1.1.12.3).
pub const RPDU: OutletMib = OutletMib {
    models: &["apc_rpdu", "apc"],
    family: "APC rPDU",
    // rPDUOutletStatusOutletName
    name: &[1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 5, 1, 1, 2],
    // rPDUOutletStatusOutletState: outletStatusOn(1), outletStatusOff(2)
    state: &[1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 5, 1, 1, 4],
    state_on: 1,
    state_off: 2,
    // rPDUOutletControlOutletCommand: immediateOn(1), immediateOff(2), immediateReboot(3)
    control: &[1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 3, 1, 1, 4],
    cmd_on: 1,
    cmd_off: 2,
    cmd_reboot: 3,
};

/// sPDUOutletControlTable (PowerNet-MIB 1.3.6.1.4.1.318.1.1.4.4.2).
pub const MASTERSWITCH: OutletMib = OutletMib {
    models: &["apc_masterswitch", "apc_spdu"],
    family: "APC MasterSwitch",
    // sPDUOutletCtlName
    name: &[1, 3, 6, 1, 4, 1, 318, 1, 1, 4, 4, 2, 1, 4],
    // sPDUOutletCtl reads outletOn(1) or outletOff(2) ...
    state: &[1, 3, 6, 1, 4, 1, 318, 1, 1, 4, 4, 2, 1, 3],
    state_on: 1,
    state_off: 2,
    // ... and takes outletOn(1), outletOff(2), outletReboot(3)
    control: &[1, 3, 6, 1, 4, 1, 318, 1, 1, 4, 4, 2, 1, 3],
    cmd_on: 1,
    cmd_off: 2,
    cmd_reboot: 3,
};
