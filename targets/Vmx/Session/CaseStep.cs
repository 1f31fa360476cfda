using EptFuzz.Contract;

namespace EptFuzz.Targets.Vmx.Session;

internal enum CaseStepKind : byte
{
    Write,
    Eptp,
    Controls,
    GuestPaging,
    Invept,
    Probe,
}

/// <summary>One call the session received, kept in order until <see cref="VmxSession.Finish"/> builds the image.</summary>
internal readonly record struct CaseStep(CaseStepKind Kind, MemoryWrite Write, ulong Eptp, VmxControls Controls, GuestPaging? Paging, Probe Probe)
{
    public static CaseStep Of(MemoryWrite write) => new(CaseStepKind.Write, write, 0, default, null, default);
    public static CaseStep OfEptp(ulong eptp) => new(CaseStepKind.Eptp, default, eptp, default, null, default);
    public static CaseStep Of(VmxControls controls) => new(CaseStepKind.Controls, default, 0, controls, null, default);
    public static CaseStep Of(GuestPaging paging) => new(CaseStepKind.GuestPaging, default, 0, default, paging, default);
    public static CaseStep OfInvept() => new(CaseStepKind.Invept, default, 0, default, null, default);
    public static CaseStep Of(Probe probe) => new(CaseStepKind.Probe, default, 0, default, null, probe);
}
