using EptFuzz.Contract;

namespace EptFuzz.Impl.Ept;

/// <summary>A leaf found by the hypervisor's own walk: where it sits and what it holds.</summary>
public readonly record struct EptLeaf(EptLevel Level, Hpa EntryAddress, ulong Value)
{
    public PageSize PageSize => LevelGeometry.SizeOf(Level);

    public EptPermissions Permissions => EptBits.Decode(Value);

    public MemoryType MemoryType => EptBits.DecodeType(Value);

    public bool IgnorePat => (Value & EptBits.IgnorePat) != 0;

    /// <summary>The host-physical address <paramref name="gpa"/> maps to through this leaf (EPT-WALK-2).</summary>
    public Hpa Translate(Gpa gpa) =>
        new((Value & LevelGeometry.LeafAddressMask(Level)) | (gpa.Value & (LevelGeometry.Span(Level) - 1)));
}
