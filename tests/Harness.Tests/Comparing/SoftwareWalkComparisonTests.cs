using EptFuzz.Contract;
using EptFuzz.Harness.Comparing;

namespace EptFuzz.Harness.Tests.Comparing;

/// <summary>
/// A software lookup (an external target's WALK) says where an address is mapped; it is compared
/// with a translator's full answer on that question only (PROTOCOL.md, WALK).
/// </summary>
public sealed class SoftwareWalkComparisonTests
{
    private const TargetTraits Model = TargetTraits.MemoryType | TargetTraits.Walk | TargetTraits.Immediate;
    private const TargetTraits Lookup = TargetTraits.SoftwareWalk;
    private const EptPermissions Rw = EptPermissions.ReadAccess | EptPermissions.WriteAccess;

    private static Observation Translated(ulong hpa, PageSize size = PageSize.Size4K, EptPermissions permissions = Rw) =>
        new() { Kind = OutcomeKind.Translated, Hpa = new Hpa(hpa), PageSize = size, Permissions = permissions, MemoryType = MemoryType.WB };

    private static readonly Observation NotMapped = new() { Kind = OutcomeKind.EptViolation };

    private static WalkEntry Ept(ulong value, EptLevel level = EptLevel.Pte) => new(WalkStructure.Ept, level, new Hpa(0x1000), value, 0);

    private static WalkEntry Guest(ulong value) => new(WalkStructure.Guest, EptLevel.Pte, new Hpa(0x2000), value, 0);

    private static Observation Violation(params WalkEntry[] walk) => new() { Kind = OutcomeKind.EptViolation, Qualification = 0x181, Walk = walk };

    [Fact]
    public void Translated_SameAddressSizeAndPermissions_Agree() =>
        Assert.Equal(Difference.None, ObservationComparer.Compare(Translated(0x5000), Model, Translated(0x5000), Lookup));

    [Fact]
    public void Translated_MemoryTypeIsNeverCompared() =>
        Assert.Equal(Difference.None, ObservationComparer.Compare(Translated(0x5000), Model, Translated(0x5000) with { MemoryType = MemoryType.UC }, Lookup));

    [Fact]
    public void Translated_OtherAddress_Hpa() =>
        Assert.Equal(Difference.Hpa, ObservationComparer.Compare(Translated(0x5000), Model, Translated(0x6000), Lookup));

    [Fact]
    public void Translated_OtherPermissions_Perm_InEitherOrder()
    {
        var lookup = Translated(0x5000, permissions: EptPermissions.ReadAccess | EptPermissions.WriteAccess | EptPermissions.ExecuteAccess);
        Assert.Equal(Difference.Permissions, ObservationComparer.Compare(Translated(0x5000), Model, lookup, Lookup));
        Assert.Equal(Difference.Permissions, ObservationComparer.Compare(lookup, Lookup, Translated(0x5000), Model));
    }

    [Fact]
    public void Translated_LookupSaysNotMapped_Kind() =>
        Assert.Equal(Difference.Kind, ObservationComparer.Compare(Translated(0x5000), Model, NotMapped, Lookup));

    [Fact]
    public void Violation_AtANotPresentEntry_MustBeNotMapped()
    {
        var full = Violation(Ept(0x3000_0007, EptLevel.Pml4e), Ept(0));
        Assert.Equal(Difference.None, ObservationComparer.Compare(full, Model, NotMapped, Lookup));
        Assert.Equal(Difference.Kind, ObservationComparer.Compare(full, Model, Translated(0x5000), Lookup));
    }

    [Fact]
    public void Violation_AtAPresentLeaf_MustBeMapped()
    {
        // A read-only page written: the walk ends at a present leaf, so the address is mapped.
        var full = Violation(Ept(0x3000_0007, EptLevel.Pml4e), Ept(0x5001));
        Assert.Equal(Difference.None, ObservationComparer.Compare(full, Model, Translated(0x5000), Lookup));
        Assert.Equal(Difference.Kind, ObservationComparer.Compare(full, Model, NotMapped, Lookup));
    }

    [Fact]
    public void GuestLinear_OnlyTheFinalAddresssWalkCounts()
    {
        // The EPT entry before the guest's PTE translated a guest table page; the final GPA's own walk
        // read nothing (GPA[51:48] set under a 4-level walk): not a question for the lookup.
        var full = Violation(Ept(0x5001), Guest(0xf_ff00_7fe0_a003));
        Assert.Equal(Difference.None, ObservationComparer.Compare(full, Model, NotMapped, Lookup));
        Assert.Equal(Difference.None, ObservationComparer.Compare(full, Model, Translated(0x5000), Lookup));
    }

    [Fact]
    public void GuestPageFault_NotPresent_MustBeNotMapped_OtherwiseNotCompared()
    {
        var notPresent = new Observation { Kind = OutcomeKind.GuestPageFault, ErrorCode = 0x2 };
        var protection = new Observation { Kind = OutcomeKind.GuestPageFault, ErrorCode = 0x3 };
        Assert.Equal(Difference.None, ObservationComparer.Compare(notPresent, Model, NotMapped, Lookup));
        Assert.Equal(Difference.Kind, ObservationComparer.Compare(notPresent, Model, Translated(0x5000), Lookup));
        Assert.Equal(Difference.None, ObservationComparer.Compare(protection, Model, Translated(0x5000), Lookup));
    }

    [Fact]
    public void Misconfiguration_IsNotCompared() =>
        Assert.Equal(Difference.None, ObservationComparer.Compare(new Observation { Kind = OutcomeKind.EptMisconfiguration }, Model, NotMapped, Lookup));
}
