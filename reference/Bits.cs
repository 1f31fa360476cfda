namespace EptFuzz.Reference;

/// <summary>Bit-range helpers, so layouts read as the SDM writes them: <c>Range(51, 12)</c>.</summary>
internal static class Bits
{
    /// <summary>A mask of bits [high:low], inclusive.</summary>
    public static ulong Range(int high, int low) => high < low ? 0 : (ulong.MaxValue >> (63 - high)) & ~((1UL << low) - 1);

    public static bool Test(ulong value, int bit) => ((value >> bit) & 1) != 0;

    /// <summary>Physical-address bits [51:N], reserved in every structure when N = MAXPHYADDR.</summary>
    public static ulong AboveMaxPhyAddr(int maxPhyAddr) => Range(51, maxPhyAddr);
}
