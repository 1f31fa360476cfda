using EptFuzz.Contract;

namespace EptFuzz.Impl.Ept;

/// <summary>One page of a larger plan (the identity map): mapped with exactly these attributes.</summary>
public readonly record struct PlannedPage(Gpa Gpa, Hpa Hpa, PageSize Size, EptPermissions Permissions, MemoryType MemoryType);
