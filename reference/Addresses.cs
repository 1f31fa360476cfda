namespace EptFuzz.Reference;

// Distinct address types so that a guest-physical address cannot be passed where a host-physical
// or guest-linear one is meant.

/// <summary>A guest-physical address (the input of an EPT walk).</summary>
public readonly record struct Gpa(ulong Value)
{
    public override string ToString() => $"gpa 0x{Value:x}";
}

/// <summary>A host-physical address (where EPT tables, and the memory they map, live).</summary>
public readonly record struct Hpa(ulong Value)
{
    public override string ToString() => $"hpa 0x{Value:x}";
}

/// <summary>A guest-linear address (the input of the guest's own paging).</summary>
public readonly record struct Gla(ulong Value)
{
    public override string ToString() => $"gla 0x{Value:x}";
}
