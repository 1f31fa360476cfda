using EptFuzz.Reference;
using EptFuzz.Reference.Rules;
using static EptFuzz.Reference.Tests.Expect;
using static EptFuzz.Reference.Tests.Scenario;

namespace EptFuzz.Reference.Tests;

/// <summary>The effective memory type: PAT selection, IPAT, CR0.CD, and Table 11-7 cell by cell (EPT-MT-2 … 5).</summary>
internal static class MemoryTypeCases
{
    private const ulong Gla = 0x1234_5000;
    private const ulong Gpa = 0x40_0000;
    private const ulong Hpa = 0x6666_6000;

    private static readonly MemoryType[] EptTypes = [MemoryType.UC, MemoryType.WC, MemoryType.WT, MemoryType.WP, MemoryType.WB];
    private static readonly MemoryType[] PatTypes = [MemoryType.UC, MemoryType.UCMinus, MemoryType.WC, MemoryType.WT, MemoryType.WB, MemoryType.WP];

    // Vol 3A Table 11-7 as printed: rows = EPT type (in the MTRR's place), columns = PAT type UC, UC-, WC, WT, WB, WP.
    private static readonly MemoryType[][] Table11_7 =
    [
        [MemoryType.UC, MemoryType.UC, MemoryType.WC, MemoryType.UC, MemoryType.UC, MemoryType.UC],
        [MemoryType.UC, MemoryType.WC, MemoryType.WC, MemoryType.UC, MemoryType.WC, MemoryType.UC],
        [MemoryType.UC, MemoryType.UC, MemoryType.WC, MemoryType.WT, MemoryType.WT, MemoryType.WP],
        [MemoryType.UC, MemoryType.WC, MemoryType.WC, MemoryType.WT, MemoryType.WP, MemoryType.WP],
        [MemoryType.UC, MemoryType.UC, MemoryType.WC, MemoryType.WT, MemoryType.WB, MemoryType.WP],
    ];

    private static Scenario Paged(MemoryType eptType, ulong guestLeafFlags = 0, ulong pat = GuestPagingState.PowerOnPat, bool ipat = false, bool cacheDisable = false) =>
        new Scenario().Map(Gpa, Hpa, leaf: Leaf(Rwx, (byte)eptType) | (ipat ? IgnorePat : 0))
            .WithGuestPaging(pat: pat, cacheDisable: cacheDisable)
            .GuestMap(Gla, Gpa, GP | GRW | guestLeafFlags);

    public static IEnumerable<ModelCase> Rows()
    {
        GuestAccess read = Linear(AccessType.Read, Gla);

        // EPT-MT-5: every cell of Table 11-7 (the PAT type comes from IA32_PAT entry 0).
        for (int row = 0; row < EptTypes.Length; row++)
        {
            for (int column = 0; column < PatTypes.Length; column++)
            {
                MemoryType ept = EptTypes[row], pat = PatTypes[column], effective = Table11_7[row][column];
                yield return new($"Ept{ept}_Pat{pat}_{effective}", Paged(ept, pat: (ulong)pat), read, Translated(Gpa, Hpa, type: effective), RuleId.EptMt5);
            }
        }

        // EPT-MT-2: the PAT entry is selected by PAT·4 + PCD·2 + PWT of the guest leaf (power-on PAT: WB WT UC- UC WB WT UC- UC).
        yield return new("GuestPwt_PatWt_EptWb_WT", Paged(MemoryType.WB, GPWT), read, Translated(Gpa, Hpa, type: MemoryType.WT), RuleId.EptMt2);
        yield return new("GuestPcd_PatUcMinus_EptWb_UC", Paged(MemoryType.WB, GPCD), read, Translated(Gpa, Hpa, type: MemoryType.UC), RuleId.EptMt2);
        yield return new("GuestPcd_PatUcMinus_EptWc_WC", Paged(MemoryType.WC, GPCD), read, Translated(Gpa, Hpa, type: MemoryType.WC), RuleId.EptMt2);
        yield return new("GuestPatPcdPwt_PatEntry7_UC", Paged(MemoryType.WB, GPS | GPCD | GPWT, pat: 0x0600_0000_0000_0000), read, Translated(Gpa, Hpa, type: MemoryType.WB), RuleId.EptMt2);
        yield return new("GuestLargePageBit12Pat_PatEntry4_WT",
            new Scenario().Map(0x20_0000_00, 0x8000_0000, PageSize.Size2M).WithGuestPaging(pat: 0x0000_0004_0000_0006).GuestMap(0x4000_0000, 0x20_0000_00, GP | (1UL << 12), PageSize.Size2M),
            Linear(AccessType.Read, 0x4000_0010), Translated(0x20_0000_10, 0x8000_0010, PageSize.Size2M, MemoryType.WT), RuleId.EptMt2);

        // EPT-MT-2: with CR0.PG = 0 the PAT type is WB, so the EPT type stands.
        yield return new("PagingOff_EptWt_WT", new Scenario().Map(Gpa, Hpa, leaf: Leaf(Rwx, 4)), ReadAt(Gpa), Translated(Gpa, Hpa, type: MemoryType.WT), RuleId.EptMt2);

        // EPT-MT-4: IPAT = 1 uses the EPT type whatever the PAT says.
        yield return new("IgnorePat_EptWb_PatUc_WB", Paged(MemoryType.WB, pat: 0, ipat: true), read, Translated(Gpa, Hpa, type: MemoryType.WB), RuleId.EptMt4);
        yield return new("IgnorePat_EptUc_PatWb_UC", Paged(MemoryType.UC, ipat: true), read, Translated(Gpa, Hpa, type: MemoryType.UC), RuleId.EptMt4);

        // EPT-MT-4: CR0.CD = 1 makes every access UC, IPAT or not.
        yield return new("CacheDisable_IgnorePatWb_UC", Paged(MemoryType.WB, ipat: true, cacheDisable: true), read, Translated(Gpa, Hpa, type: MemoryType.UC), RuleId.EptMt4);
    }
}
