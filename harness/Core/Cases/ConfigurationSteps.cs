using EptFuzz.Contract;

namespace EptFuzz.Harness.Cases;

// Configuration steps: the processor, the EPT pointer, the VM-execution controls, guest paging.
// Every key is optional (null = not written); the To… helpers apply the format's defaults.

/// <summary><c>cpu maxphyaddr=N exec-only=0/1 page2m=0/1 page1g=0/1 ad=0/1 mbec=0/1 walk5=0/1 adv-exit-info=0/1 eptp-uc=0/1 eptp-wb=0/1</c>.</summary>
public sealed record CpuStep(
    int? MaxPhyAddr = null,
    bool? ExecuteOnly = null,
    bool? Page2M = null,
    bool? Page1G = null,
    bool? AccessedDirty = null,
    bool? Mbec = null,
    bool? Walk5 = null,
    bool? AdvancedExitInfo = null,
    bool? EptpUc = null,
    bool? EptpWb = null) : Step
{
    public override string Verb => "cpu";

    public override StepCategory Category => StepCategory.Operation;

    public CpuCapabilities ToCapabilities()
    {
        var d = CpuCapabilities.Default;
        return new CpuCapabilities
        {
            MaxPhyAddr = MaxPhyAddr ?? d.MaxPhyAddr,
            ExecuteOnly = ExecuteOnly ?? d.ExecuteOnly,
            Page2M = Page2M ?? d.Page2M,
            Page1G = Page1G ?? d.Page1G,
            AccessedDirty = AccessedDirty ?? d.AccessedDirty,
            Mbec = Mbec ?? d.Mbec,
            Walk5 = Walk5 ?? d.Walk5,
            AdvancedExitInfo = AdvancedExitInfo ?? d.AdvancedExitInfo,
            EptpUc = EptpUc ?? d.EptpUc,
            EptpWb = EptpWb ?? d.EptpWb,
        };
    }
}

/// <summary>
/// <c>eptp mt=T walk=4/5 ad=0/1</c> (the root is the target's own) or <c>eptp raw=0x…</c> (all 64
/// bits). <see cref="Raw"/> excludes the named fields.
/// </summary>
public sealed record EptpStep(ulong? Raw = null, MemoryType? MemoryType = null, int? WalkLength = null, bool? AccessedDirty = null) : Step
{
    public override string Verb => "eptp";

    public override StepCategory Category => StepCategory.Operation;

    public static EptpStep FromRaw(ulong raw) => new(Raw: raw);

    public EptpRequest ToRequest()
    {
        var d = new EptpRequest();
        return new EptpRequest
        {
            Raw = Raw,
            MemoryType = MemoryType ?? d.MemoryType,
            WalkLength = WalkLength ?? d.WalkLength,
            AccessedDirty = AccessedDirty ?? d.AccessedDirty,
        };
    }
}

/// <summary><c>controls mbec=0/1</c>.</summary>
public sealed record ControlsStep(bool? Mbec = null) : Step
{
    public override string Verb => "controls";

    public override StepCategory Category => StepCategory.Operation;

    public VmxControls ToControls() => new(Mbec ?? false);
}

/// <summary>
/// <c>guest paging=off</c>, or <c>guest paging=4level cr3=GPA tables=A-B [wp=0/1] [nxe=0/1]
/// [smep=0/1] [pat=0x…]</c>. With paging off every other field is null.
/// </summary>
public sealed record GuestStep(
    bool Paging,
    Gpa? Cr3 = null,
    Gpa? TablesStart = null,
    Gpa? TablesEnd = null,
    bool? Wp = null,
    bool? Nxe = null,
    bool? Smep = null,
    ulong? Pat = null) : Step
{
    public override string Verb => "guest";

    public override StepCategory Category => StepCategory.Operation;

    public static GuestStep Off() => new(false);

    public static GuestStep FourLevel(Gpa cr3, Gpa tablesStart, Gpa tablesEnd) => new(true, cr3, tablesStart, tablesEnd);

    public GuestPaging ToGuestPaging()
    {
        if (!Paging)
        {
            return GuestPaging.Off;
        }

        var d = new GuestPaging();
        return new GuestPaging
        {
            Enabled = true,
            Cr3 = Cr3 ?? default,
            Wp = Wp ?? d.Wp,
            Nxe = Nxe ?? d.Nxe,
            Smep = Smep ?? d.Smep,
            Pat = Pat ?? d.Pat,
        };
    }
}
