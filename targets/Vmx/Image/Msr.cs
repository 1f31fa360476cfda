namespace EptFuzz.Targets.Vmx.Image;

/// <summary>Model-specific register numbers the kernel reads or writes (SDM Vol. 4 and Appendix A).</summary>
internal static class Msr
{
    public const uint FeatureControl = 0x3A;
    public const uint VmxBasic = 0x480;
    public const uint VmxPinBasedControls = 0x481;
    public const uint VmxProcBasedControls = 0x482;
    public const uint VmxExitControls = 0x483;
    public const uint VmxEntryControls = 0x484;
    public const uint VmxMisc = 0x485;
    public const uint VmxCr0Fixed0 = 0x486;
    public const uint VmxCr0Fixed1 = 0x487;
    public const uint VmxCr4Fixed0 = 0x488;
    public const uint VmxCr4Fixed1 = 0x489;
    public const uint VmxProcBasedControls2 = 0x48B;
    public const uint VmxEptVpidCap = 0x48C;
    public const uint VmxTruePinBasedControls = 0x48D;
    public const uint VmxTrueProcBasedControls = 0x48E;
    public const uint VmxTrueExitControls = 0x48F;
    public const uint VmxTrueEntryControls = 0x490;
    public const uint Efer = 0xC0000080;

    /// <summary>The capability MSRs the kernel reports, in order, when VMX is present (0x48B/0x48C only when they exist).</summary>
    public static readonly uint[] Reported =
    [
        FeatureControl, VmxBasic, VmxPinBasedControls, VmxProcBasedControls, VmxExitControls, VmxEntryControls,
        VmxMisc, VmxCr0Fixed0, VmxCr0Fixed1, VmxCr4Fixed0, VmxCr4Fixed1,
    ];
}
