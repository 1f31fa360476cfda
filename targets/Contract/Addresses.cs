namespace EptFuzz.Contract;

// Distinct address types so that one kind cannot be passed for another (hvpp's typed addresses).

/// <summary>A guest-physical address.</summary>
public readonly record struct Gpa(ulong Value)
{
    public override string ToString() => $"0x{Value:x}";
    public static Gpa operator +(Gpa a, ulong offset) => new(a.Value + offset);
}

/// <summary>A host-physical address.</summary>
public readonly record struct Hpa(ulong Value)
{
    public override string ToString() => $"0x{Value:x}";
    public static Hpa operator +(Hpa a, ulong offset) => new(a.Value + offset);
}

/// <summary>A guest-linear (virtual) address.</summary>
public readonly record struct Gva(ulong Value)
{
    public override string ToString() => $"0x{Value:x}";
}
