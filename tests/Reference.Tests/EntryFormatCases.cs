using EptFuzz.Reference;
using EptFuzz.Reference.Rules;
using static EptFuzz.Reference.Tests.Expect;
using static EptFuzz.Reference.Tests.Scenario;

namespace EptFuzz.Reference.Tests;

/// <summary>
/// Reserved bits at every kind of EPT entry (EPT-ENTRY-1 … 5, EPT-MISCONFIG-4/6), every memory
/// type of a leaf (EPT-MISCONFIG-5, EPT-MT-3), and every page size with MAXPHYADDR 46.
/// </summary>
internal static class EntryFormatCases
{
    private const int MaxPhyAddr = 46;
    private const ulong Gpa = 0x80_4000_0000;
    private const ulong Hpa = 0x1_4000_0000;

    private sealed record Position(string Name, int Levels, Level Level, PageSize Size, int[] ReservedLowBits);

    private static readonly Position[] Positions =
    [
        new("Pml5e", 5, Level.Pml5e, PageSize.Size4K, [3, 4, 5, 6, 7]),
        new("Pml4e", 4, Level.Pml4e, PageSize.Size4K, [3, 4, 5, 6, 7]),
        new("Pdpte", 4, Level.Pdpte, PageSize.Size4K, [3, 4, 5, 6]),
        new("Pde", 4, Level.Pde, PageSize.Size4K, [3, 4, 5, 6]),
        new("Pdpte1G", 4, Level.Pdpte, PageSize.Size1G, Enumerable.Range(12, 18).ToArray()),
        new("Pde2M", 4, Level.Pde, PageSize.Size2M, Enumerable.Range(12, 9).ToArray()),
        new("Pte", 4, Level.Pte, PageSize.Size4K, []),
    ];

    private static Scenario Build(Position position) =>
        new Scenario(position.Levels, capabilities: new ProcessorCapabilities { MaxPhysicalAddressWidth = MaxPhyAddr, PageWalkLength5 = true })
            .Map(Gpa, Hpa, position.Size);

    public static IEnumerable<ModelCase> Rows()
    {
        foreach (Position position in Positions)
        {
            // EPT-MISCONFIG-4: the entry kind's reserved bits below the address field.
            foreach (int bit in position.ReservedLowBits)
            {
                Scenario scenario = Build(position).EditEntry(Gpa, position.Level, set: 1UL << bit);
                yield return new($"{position.Name}_ReservedBit{bit}_Misconfig", scenario, ReadAt(Gpa), Misconfig(Gpa), RuleId.EptMisconfig4);
            }

            // EPT-MISCONFIG-6: physical-address bits 51:N.
            for (int bit = MaxPhyAddr; bit <= 51; bit++)
            {
                Scenario scenario = Build(position).EditEntry(Gpa, position.Level, set: 1UL << bit);
                yield return new($"{position.Name}_AddressBit{bit}AboveMaxPhyAddr_Misconfig", scenario, WriteAt(Gpa), Misconfig(Gpa), RuleId.EptMisconfig6);
            }

            // Bits 63:52 are never address bits: ignored (or feature bits whose controls are off).
            Scenario high = Build(position).EditEntry(Gpa, position.Level, set: (1UL << 52) | (1UL << 59) | (1UL << 62));
            yield return new($"{position.Name}_Bits62To52_Translated", high, ReadAt(Gpa), Translated(Gpa, Hpa, position.Size), RuleId.EptEntry6);

            bool leaf = position.Size != PageSize.Size4K || position.Level == Level.Pte;
            if (!leaf)
            {
                continue;
            }

            // EPT-MISCONFIG-5 and EPT-MT-3: a leaf's bits 5:3 are its memory type; 2, 3 and 7 are invalid.
            for (byte type = 0; type < 8; type++)
            {
                Scenario scenario = Build(position).EditEntry(Gpa, position.Level, set: (ulong)type << 3, clear: 7 << 3);
                if (MemoryTyping.IsValidEptType(type))
                {
                    yield return new($"{position.Name}_MemoryType{(MemoryType)type}_Translated", scenario, ReadAt(Gpa),
                        Translated(Gpa, Hpa, position.Size, (MemoryType)type), RuleId.EptMt3);
                }
                else
                {
                    yield return new($"{position.Name}_MemoryType{type}_Misconfig", scenario, ReadAt(Gpa), Misconfig(Gpa), RuleId.EptMisconfig5);
                }
            }
        }
    }
}
