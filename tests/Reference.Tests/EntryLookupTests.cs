using EptFuzz.Reference;
using static EptFuzz.Reference.Tests.Scenario;

namespace EptFuzz.Reference.Tests;

/// <summary>The reach of an entry probe: through present non-leaf entries only (SEMANTICS.md "Entry probes").</summary>
public sealed class EntryLookupTests
{
    private const ulong Gpa = 0x40_0000;

    private static EntryLookup Find(Scenario scenario, Level level, bool mbec = false, ulong? eptp = null) =>
        EptModel.FindEntry(eptp is { } raw ? new Eptp(raw) : scenario.Eptp, new VmExecutionControls(mbec), scenario.Memory, new Gpa(Gpa), level);

    [Fact]
    public void MappedPte_Reached_WithItsAddressAndValue()
    {
        Scenario scenario = new Scenario().Map(Gpa, 0x9000);
        EntryLookup pte = Find(scenario, Level.Pte);
        Assert.True(pte.Reached);
        Assert.Equal(0x9000 | Leaf(), pte.Value);
        Assert.Equal(scenario.Memory.Read(pte.Address), pte.Value);
    }

    [Fact]
    public void BelowA2MLeaf_NotReached()
    {
        Scenario scenario = new Scenario().Map(Gpa, 0x20_0000, PageSize.Size2M);
        Assert.True(Find(scenario, Level.Pde).Reached);
        Assert.False(Find(scenario, Level.Pte).Reached);
    }

    [Fact]
    public void BelowANotPresentEntry_NotReached_UnlessMbecMakesXuPresent()
    {
        Scenario scenario = new Scenario().Map(Gpa, 0x9000).EditEntry(Gpa, Level.Pdpte, set: XU, clear: Rwx);
        Assert.False(Find(scenario, Level.Pde).Reached);
        Assert.True(Find(scenario, Level.Pde, mbec: true).Reached);
    }

    [Fact]
    public void MisconfiguredEntry_IsStillWalkedThrough()
    {
        Scenario scenario = new Scenario().Map(Gpa, 0x9000).EditEntry(Gpa, Level.Pml4e, set: W, clear: R | (1UL << 5));
        Assert.True(Find(scenario, Level.Pte).Reached);
    }

    [Fact]
    public void LevelAboveWalkLength_OrInvalidLength_NotReached()
    {
        Scenario scenario = new Scenario().Map(Gpa, 0x9000);
        Assert.False(Find(scenario, Level.Pml5e).Reached);
        Assert.False(Find(scenario, Level.Pml4e, eptp: scenario.Root | 6 | (2 << 3)).Reached);
    }
}
