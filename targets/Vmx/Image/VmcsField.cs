namespace EptFuzz.Targets.Vmx.Image;

/// <summary>VMCS field encodings (Intel SDM Vol. 3D, Appendix B "Field Encoding in VMCS").</summary>
internal static class VmcsField
{
    // 16-bit guest-state fields.
    public const uint GuestEsSelector = 0x0800;
    public const uint GuestCsSelector = 0x0802;
    public const uint GuestSsSelector = 0x0804;
    public const uint GuestDsSelector = 0x0806;
    public const uint GuestFsSelector = 0x0808;
    public const uint GuestGsSelector = 0x080A;
    public const uint GuestLdtrSelector = 0x080C;
    public const uint GuestTrSelector = 0x080E;

    // 16-bit host-state fields.
    public const uint HostEsSelector = 0x0C00;
    public const uint HostCsSelector = 0x0C02;
    public const uint HostSsSelector = 0x0C04;
    public const uint HostDsSelector = 0x0C06;
    public const uint HostFsSelector = 0x0C08;
    public const uint HostGsSelector = 0x0C0A;
    public const uint HostTrSelector = 0x0C0C;

    // 64-bit fields.
    public const uint EptPointer = 0x201A;
    public const uint GuestPhysicalAddress = 0x2400;
    public const uint VmcsLinkPointer = 0x2800;
    public const uint GuestDebugCtl = 0x2802;
    public const uint GuestPat = 0x2804;
    public const uint GuestEfer = 0x2806;
    public const uint HostPat = 0x2C00;
    public const uint HostEfer = 0x2C02;

    // 32-bit control fields.
    public const uint PinBasedControls = 0x4000;
    public const uint ProcBasedControls = 0x4002;
    public const uint ExceptionBitmap = 0x4004;
    public const uint PageFaultErrorCodeMask = 0x4006;
    public const uint PageFaultErrorCodeMatch = 0x4008;
    public const uint Cr3TargetCount = 0x400A;
    public const uint ExitControls = 0x400C;
    public const uint ExitMsrStoreCount = 0x400E;
    public const uint ExitMsrLoadCount = 0x4010;
    public const uint EntryControls = 0x4012;
    public const uint EntryMsrLoadCount = 0x4014;
    public const uint EntryInterruptionInfo = 0x4016;
    public const uint SecondaryControls = 0x401E;

    // 32-bit read-only data fields.
    public const uint InstructionError = 0x4400;
    public const uint ExitReason = 0x4402;
    public const uint ExitInterruptionInfo = 0x4404;
    public const uint ExitInterruptionErrorCode = 0x4406;

    // 32-bit guest-state fields.
    public const uint GuestEsLimit = 0x4800;
    public const uint GuestCsLimit = 0x4802;
    public const uint GuestSsLimit = 0x4804;
    public const uint GuestDsLimit = 0x4806;
    public const uint GuestFsLimit = 0x4808;
    public const uint GuestGsLimit = 0x480A;
    public const uint GuestLdtrLimit = 0x480C;
    public const uint GuestTrLimit = 0x480E;
    public const uint GuestGdtrLimit = 0x4810;
    public const uint GuestIdtrLimit = 0x4812;
    public const uint GuestEsAccessRights = 0x4814;
    public const uint GuestCsAccessRights = 0x4816;
    public const uint GuestSsAccessRights = 0x4818;
    public const uint GuestDsAccessRights = 0x481A;
    public const uint GuestFsAccessRights = 0x481C;
    public const uint GuestGsAccessRights = 0x481E;
    public const uint GuestLdtrAccessRights = 0x4820;
    public const uint GuestTrAccessRights = 0x4822;
    public const uint GuestInterruptibility = 0x4824;
    public const uint GuestActivityState = 0x4826;
    public const uint GuestSysenterCs = 0x482A;
    public const uint PreemptionTimerValue = 0x482E;
    public const uint HostSysenterCs = 0x4C00;

    // Natural-width fields.
    public const uint Cr0GuestHostMask = 0x6000;
    public const uint Cr4GuestHostMask = 0x6002;
    public const uint Cr0ReadShadow = 0x6004;
    public const uint Cr4ReadShadow = 0x6006;
    public const uint ExitQualification = 0x6400;
    public const uint GuestLinearAddress = 0x640A;
    public const uint GuestCr0 = 0x6800;
    public const uint GuestCr3 = 0x6802;
    public const uint GuestCr4 = 0x6804;
    public const uint GuestEsBase = 0x6806;
    public const uint GuestCsBase = 0x6808;
    public const uint GuestSsBase = 0x680A;
    public const uint GuestDsBase = 0x680C;
    public const uint GuestFsBase = 0x680E;
    public const uint GuestGsBase = 0x6810;
    public const uint GuestLdtrBase = 0x6812;
    public const uint GuestTrBase = 0x6814;
    public const uint GuestGdtrBase = 0x6816;
    public const uint GuestIdtrBase = 0x6818;
    public const uint GuestDr7 = 0x681A;
    public const uint GuestRsp = 0x681C;
    public const uint GuestRip = 0x681E;
    public const uint GuestRflags = 0x6820;
    public const uint GuestPendingDebugExceptions = 0x6822;
    public const uint GuestSysenterEsp = 0x6824;
    public const uint GuestSysenterEip = 0x6826;
    public const uint HostCr0 = 0x6C00;
    public const uint HostCr3 = 0x6C02;
    public const uint HostCr4 = 0x6C04;
    public const uint HostFsBase = 0x6C06;
    public const uint HostGsBase = 0x6C08;
    public const uint HostTrBase = 0x6C0A;
    public const uint HostGdtrBase = 0x6C0C;
    public const uint HostIdtrBase = 0x6C0E;
    public const uint HostSysenterEsp = 0x6C10;
    public const uint HostSysenterEip = 0x6C12;
    public const uint HostRsp = 0x6C14;
    public const uint HostRip = 0x6C16;
}
