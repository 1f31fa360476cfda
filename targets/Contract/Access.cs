namespace EptFuzz.Contract;

public enum AccessKind : byte
{
    Read,
    Write,
    Fetch,
}

/// <summary>
/// One guest access. <see cref="Linear"/> false: a guest-physical address (the case format's
/// <c>gpa=</c>, guest paging off). True: a guest-linear address translated through guest paging
/// (<c>gva=</c>) at <see cref="Cpl"/> 0 or 3.
/// </summary>
public readonly record struct Access(AccessKind Kind, ulong Address, bool Linear, byte Cpl)
{
    public static Access Physical(AccessKind kind, Gpa gpa) => new(kind, gpa.Value, false, 0);

    public static Access ThroughPaging(AccessKind kind, Gva gva, byte cpl) => new(kind, gva.Value, true, cpl);
}
