using EptFuzz.Reference;
using EptFuzz.Reference.Rules;

namespace EptFuzz.Reference.Tests;

/// <summary>
/// One table row: a named scenario and access, the outcome the SDM gives, the rule the row
/// exists for (it must fire), and optionally the exact A/D writes (address → final value).
/// </summary>
internal sealed record ModelCase(string Name, Scenario Scenario, GuestAccess Access, AccessOutcome Expected, RuleId Rule, IReadOnlyDictionary<ulong, ulong>? Writes = null)
{
    public Evaluation Evaluate() => Scenario.Run(Access);

    public override string ToString() => Name;
}

/// <summary>Builders for expected outcomes, so rows read as the SDM states them.</summary>
internal static class Expect
{
    public const ulong Read = ExitQualification.DataRead;
    public const ulong Write = ExitQualification.DataWrite;
    public const ulong Fetch = ExitQualification.InstructionFetch;
    public const ulong Readable = ExitQualification.Readable;
    public const ulong Writable = ExitQualification.Writable;
    public const ulong Executable = ExitQualification.Executable;
    public const ulong UserExecutable = ExitQualification.UserExecutable;
    public const ulong GlaValid = ExitQualification.GuestLinearAddressValid;
    public const ulong Final = ExitQualification.FinalTranslation;
    public const ulong UserAddress = ExitQualification.UserModeLinearAddress;
    public const ulong RwPage = ExitQualification.ReadWritePage;
    public const ulong XdPage = ExitQualification.ExecuteDisablePage;

    /// <summary>A violation on a CR0.PG = 0 access: GLA = GPA, bits 7 and 8 set.</summary>
    public static EptViolation PhysicalViolation(ulong gpa, ulong bits) =>
        new(new ExitQualification(bits | GlaValid | Final), new Gpa(gpa), new Gla(gpa), true);

    public static EptViolation Violation(ulong gpa, ulong gla, ulong qualification) =>
        new(new ExitQualification(qualification), new Gpa(gpa), new Gla(gla), (qualification & GlaValid) != 0);

    public static EptMisconfiguration Misconfig(ulong gpa) => new(new Gpa(gpa));

    public static Translated Translated(ulong gpa, ulong hpa, PageSize size = PageSize.Size4K, MemoryType type = MemoryType.WB, EptPermissions permissions = EptPermissions.ReadAccess | EptPermissions.WriteAccess | EptPermissions.ExecuteAccess) =>
        new(new Hpa(hpa), new Gpa(gpa), size, type, permissions);

    public static GuestPageFault PageFault(uint errorCode) => new(errorCode);

    public static GuestAccess ReadAt(ulong gpa) => GuestAccess.Physical(AccessType.Read, new Gpa(gpa));

    public static GuestAccess WriteAt(ulong gpa) => GuestAccess.Physical(AccessType.Write, new Gpa(gpa));

    public static GuestAccess FetchAt(ulong gpa) => GuestAccess.Physical(AccessType.InstructionFetch, new Gpa(gpa));

    public static GuestAccess Linear(AccessType type, ulong gla, int cpl = 0) => GuestAccess.AtLinear(type, new Gla(gla), cpl);
}
