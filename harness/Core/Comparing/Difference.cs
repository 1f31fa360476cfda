using EptFuzz.Contract;

namespace EptFuzz.Harness.Comparing;

/// <summary>The fields in which two observations of one probe differ.</summary>
[Flags]
public enum Difference
{
    None = 0,
    Kind = 1 << 0,
    Hpa = 1 << 1,
    PageSize = 1 << 2,
    MemoryType = 1 << 3,
    Gpa = 1 << 4,
    Qualification = 1 << 5,
    GuestLinearAddress = 1 << 6,
    ErrorCode = 1 << 7,
    EntryValue = 1 << 8,
    VmEntry = 1 << 9,
    AccessedDirty = 1 << 10,
    /// <summary>The permissions of a translation (AND over the walk).</summary>
    Permissions = 1 << 11,
}

public static class DifferenceNames
{
    private static readonly (Difference Flag, string Name)[] Names =
    [
        (Difference.Kind, "kind"),
        (Difference.Hpa, "hpa"),
        (Difference.PageSize, "size"),
        (Difference.Permissions, "perm"),
        (Difference.MemoryType, "mt"),
        (Difference.Gpa, "gpa"),
        (Difference.Qualification, "qual"),
        (Difference.GuestLinearAddress, "gla"),
        (Difference.ErrorCode, "code"),
        (Difference.EntryValue, "value"),
        (Difference.VmEntry, "vmentry"),
        (Difference.AccessedDirty, "ad"),
        (Difference.Permissions, "perm"),
    ];

    public static string Text(this Difference difference) =>
        difference == Difference.None ? "none" : string.Join(",", Names.Where(n => difference.HasFlag(n.Flag)).Select(n => n.Name));

    public static string Text(this OutcomeKind kind) => kind switch
    {
        OutcomeKind.Translated => "ok",
        OutcomeKind.EptViolation => "violation",
        OutcomeKind.EptMisconfiguration => "misconfig",
        OutcomeKind.GuestPageFault => "page-fault",
        OutcomeKind.Entry => "entry",
        OutcomeKind.EntryNotReached => "entry-not-reached",
        OutcomeKind.VmEntry => "vmentry",
        OutcomeKind.NoVmEntry => "no-vmentry",
        OutcomeKind.Unsupported => "unsupported",
        _ => kind.ToString(),
    };
}
