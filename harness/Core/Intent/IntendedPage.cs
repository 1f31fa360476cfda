using EptFuzz.Contract;

namespace EptFuzz.Harness.Intent;

/// <summary>One page the operations so far should have mapped.</summary>
public readonly record struct IntendedPage(Gpa Gpa, Hpa Hpa, PageSize Size, EptPermissions Permissions, MemoryType MemoryType, bool IgnorePat)
{
    public ulong End => Gpa.Value + Size.Bytes();

    public bool SameAttributes(IntendedPage other) =>
        Permissions == other.Permissions && MemoryType == other.MemoryType && IgnorePat == other.IgnorePat;
}
